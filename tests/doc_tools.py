"""The documented commands at tiny size: what ``tests/test_docs.py`` puts on PATH in front of fairseq's tools.

``python tests/doc_tools.py fairseq-train ARGS...`` runs ``fairseq-train ARGS...`` exactly as documented, plus what
makes it run on a CPU in seconds: ``--fp16``/``--bf16`` dropped (they do not run on a CPU) and ``--cpu`` added, the
documented ``--arch`` (roberta_large, bart_large) at the tests' tiny size (the tiny stand-in checkpoints have that
size), two updates. Everything else (data paths, --user-dir, criteria, tasks, restore files, save dirs, decoding
options) is the documented command's own, so a documented command that breaks fails here too.
"""

import os
import sys
from typing import List

sys.path.insert(0, os.path.dirname(os.path.dirname(os.path.abspath(__file__))))
from tests.helpers import TINY_BART, TINY_ROBERTA  # noqa: E402

# the tests' tiny sizes, with room for the docs' sentences (byte-level toy BPE: a token per character or so)
DOC_ROBERTA = TINY_ROBERTA + ["--max-positions", "512"]
DOC_BART = TINY_BART + ["--max-source-positions", "512", "--max-target-positions", "512"]
UPDATES = ["--max-update", "2", "--total-num-update", "2", "--warmup-updates", "1"]
HYDRA_TINY = [
    "model._name=roberta_base",
    "+model.encoder_layers=2",
    "+model.encoder_embed_dim=32",
    "+model.encoder_ffn_embed_dim=64",
    "+model.encoder_attention_heads=2",
    "+model.max_positions=512",
    "task.max_positions=512",
    "common.cpu=true",
    "common.fp16=false",
    "optimization.max_update=2",
    "lr_scheduler.total_num_update=2",
    "lr_scheduler.warmup_updates=1",
    "dataset.max_tokens=2000",
]
# a --multirun sweep of the whole grid is 8 trainings: two settings show the sweep, its folders and its paths
HYDRA_SWEEP = ['hydra.sweeper.params={criterion.r3f_lambda:"0.1,5.0",criterion.noise_type:uniform}']


def last_value(argv: List[str], flag: str):
    values = [argv[i + 1] for i, a in enumerate(argv[:-1]) if a == flag]
    return values[-1] if values else None


def tiny(tool: str, argv: List[str]) -> List[str]:
    if tool == "fairseq-hydra-train":
        return argv + HYDRA_TINY + (HYDRA_SWEEP if "--multirun" in argv or "-m" in argv else [])
    if "--help" in argv or "-h" in argv:
        return argv
    out = [a for a in argv if a not in ("--fp16", "--bf16", "--memory-efficient-fp16")] + ["--cpu"]
    arch = last_value(argv, "--arch")
    if arch in ("roberta_large", "roberta_base"):
        out += DOC_ROBERTA
    elif arch in ("bart_large", "bart_base"):
        out += DOC_BART
    if tool == "fairseq-train" and "--help" not in argv:
        out += UPDATES + ["--num-workers", "0"]
    return out


def main() -> None:
    tool, argv = sys.argv[1], sys.argv[2:]
    real = os.path.join(os.path.dirname(sys.executable), tool)
    os.execv(real, [real, *tiny(tool, argv)])


if __name__ == "__main__":
    main()
