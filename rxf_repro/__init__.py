"""rxf_repro: reproducing the paper around the plugin (outputs, runs, records, reports).

Nothing here imports fairseq or torch at import time: the plugin is ``rxf_fairseq``, the method ``rxf``.
"""
