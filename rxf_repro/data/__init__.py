"""The data pipelines behind ``preprocess/*.sh``: official dataset files -> validated, owned fairseq binaries."""
