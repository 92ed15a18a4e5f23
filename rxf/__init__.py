"""rxf: R3F and R4F (Aghajanyan et al., 2020) without a framework; torch only.

The noise z and the one place it enters a model (a forward hook on an embedding module), the symmetric KL and the
regression term, the spectral-norm layer of R4F's head, the linear probe's surgery, SMART's projected ascent and
momentum teacher. The fairseq plugin (``rxf_fairseq``) and the transformers integration (``rxf.hf``, the one module
here that imports transformers) are thin layers over these.
"""
