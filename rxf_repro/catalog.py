"""The reproduction's vocabulary, written once: tasks, datasets, languages, methods, their names and metrics (each GLUE
task's best-checkpoint metric read from ``configs/``). Standard library and PyYAML only: ``rxf-report`` imports it
without fairseq or torch.
"""

import os
from typing import Dict, Tuple

from rxf_repro import configs

# GLUE: config name (configs/glue/NAME.yaml) -> the task's name in the paper, in Table 2's column order (+ STS-B)
GLUE_TASKS: Dict[str, str] = {
    "mnli": "MNLI",
    "qqp": "QQP",
    "rte": "RTE",
    "qnli": "QNLI",
    "mrpc": "MRPC",
    "cola": "CoLA",
    "sst_2": "SST-2",
    "sts_b": "STS-B",
}
# make demo's GLUE-shaped tasks on WordNet's English (rxf_repro/data/wordnet.py writes them): config name -> name
DEMO_TASKS: Dict[str, str] = {"wn_pos": "WN-POS", "wn_lex": "WN-LEX", "wn_def": "WN-DEF", "wn_bshift": "WN-BSHIFT"}
# every task of configs/glue: what rxf-run's glue family fine-tunes and its probes probe (GLUE's first)
TASKS: Dict[str, str] = {**GLUE_TASKS, **DEMO_TASKS}
XNLI_LANGUAGES: Tuple[str, ...] = tuple("en fr es de el bg ru tr ar vi th zh hi sw ur".split())  # Table 3's order
SUMMARIZATION: Dict[str, str] = {"cnn_dm": "CNN/DailyMail", "gigaword": "Gigaword", "reddit_tifu": "Reddit TIFU (long)"}

# Methods: one display name each, used by every table, figure, log line and the demo.
METHOD_NAMES: Dict[str, str] = {
    "none": "pretrained, not fine-tuned",
    "std": "Standard",
    "std++": "Standard++",
    "smart": "SMART",
    "r3f": "R3F",
    "r4f": "R4F",
    "fast-r3f": "fast R3F",
    # not in the paper: R-Drop (Liang et al., 2021) and R3F's two controls, which separate the noise from dropout
    "rdrop": "R-Drop",
    "r3f-no-noise": "R3F without noise",
    "r3f-same-dropout": "R3F, same dropout masks",
}
METHOD_ORDER: Tuple[str, ...] = tuple(METHOD_NAMES)  # rows of every table, in this order
PRETRAINED = "none"  # probes of the pretrained encoder itself (no fine-tuning): what collapse is measured from
# The methods of the paper's Tables 2 (GLUE), 3 (XNLI) and 4 (summarisation) and of probing (Figures 3-5), with fast
# R3F: each searches the same number of settings per task (docs/reproduction.md)
TABLE_METHODS: Dict[str, Tuple[str, ...]] = {
    "glue": ("std", "std++", "r3f", "r4f", "fast-r3f", "smart"),
    "xnli": ("std", "r3f", "r4f"),
    "summarization": ("std", "r3f"),
    "probe": ("std", "std++", "r3f", "r4f", "fast-r3f", "smart", PRETRAINED),
}
# Not in the paper, run by name only (rxf-run glue RTE rdrop): is R3F's gain the noise's or dropout's (docs/noise.md)?
# GLUE: R-Drop and both controls. Probing: the same, since collapse is the paper's other claim for the noise (and
# rxf-demo runs its methods there). Summarisation: R-Drop, on BART as its authors ran it. XNLI: none.
EXTRA_METHODS: Dict[str, Tuple[str, ...]] = {
    "glue": ("rdrop", "r3f-no-noise", "r3f-same-dropout"),
    "xnli": (),
    "summarization": ("rdrop",),
    "probe": ("rdrop", "r3f-no-noise", "r3f-same-dropout"),
}
# What rxf-run FAMILY accepts: the table's methods, then the extra ones
FAMILY_METHODS: Dict[str, Tuple[str, ...]] = {f: TABLE_METHODS[f] + EXTRA_METHODS[f] for f in TABLE_METHODS}

# Probing protocols (Section 4)
PROTOCOLS: Tuple[str, ...] = ("generalisation", "degradation", "retention")
PROBE_CHAIN: Tuple[str, ...] = ("sst_2", "qnli", "qqp", "rte")  # Sections 4.2-4.3: SST-2 -> QNLI -> QQP -> RTE
GENERALISATION_PROBES: Tuple[str, ...] = ("mnli", "qnli", "qqp", "rte", "mrpc", "cola")  # Section 4.1

ROUGE: Tuple[str, ...] = ("rouge1", "rouge2", "rougeL")


def method_name(method: str) -> str:
    return METHOD_NAMES.get(method, method)


def glue_config(task: str) -> str:
    """``SST-2`` or ``sst_2`` (``WN-POS`` or ``wn_pos``) names configs/glue/sst_2.yaml (wn_pos.yaml); else ValueError."""
    for key, name in TASKS.items():
        if task in (key, name) or task.lower().replace("-", "_") == key:
            return key
    raise ValueError(f"unknown task {task!r}; one of: {', '.join(TASKS.values())}")


def primary_metric(task: str) -> str:
    """A GLUE task's ``checkpoint.best_checkpoint_metric``: ``accuracy``, ``mcc`` (CoLA), ``pearson_and_spearman``..."""
    path = os.path.join(configs.folder("glue"), f"{glue_config(task)}.yaml")
    return configs.read_yaml(path)["checkpoint"]["best_checkpoint_metric"]
