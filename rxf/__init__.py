"""rxf: R3F and R4F (Aghajanyan et al., 2020) without a framework, torch only: the noise, the symmetric KL, R4F's
spectral norm, the linear probe and SMART. The fairseq plugin (``rxf_fairseq``) and the transformers integration
(``rxf.hf``, the one module here that imports transformers) are thin layers over these."""
