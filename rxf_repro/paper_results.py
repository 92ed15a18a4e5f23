"""The paper's published numbers (Tables 2-4), as data, so that ``rxf-report`` prints them next to ours: typed in from
Aghajanyan et al. 2020 ("Better Fine-Tuning by Reducing Representational Collapse") cell by cell as the paper prints
them (``"40.90"``, ``"90.2/-"``; ``None`` is the paper's "-", not reported), in percent (CoLA: MCC x 100).
"""

from typing import Dict, Optional, Tuple

from rxf_repro import catalog


class Published(float):
    """A number of the paper: a float for arithmetic, printed with the paper's digits (40.90, not 40.9)."""

    text: str

    def __new__(cls, text: str) -> "Published":
        value = super().__new__(cls, text)
        value.text = text
        return value

    def __str__(self) -> str:
        return self.text

    __repr__ = __str__


Number = Optional[float]
# Table 2's columns as the paper prints them: a cell "a/b" holds the two metrics of MNLI and QQP.
TABLE2_COLUMNS: Tuple[Tuple[str, Tuple[str, ...]], ...] = (
    ("MNLI", ("accuracy", "accuracy_mm")),
    ("QQP", ("accuracy", "f1")),
    ("RTE", ("accuracy",)),
    ("QNLI", ("accuracy",)),
    ("MRPC", ("accuracy",)),
    ("CoLA", ("mcc",)),
    ("SST-2", ("accuracy",)),
)


def _number(cell: str) -> Number:
    return None if cell == "-" else Published(cell)


def _glue_row(*cells: str) -> Dict[str, Dict[str, Number]]:
    """One row of Table 2, cell by cell as printed (MNLI m/mm, QQP acc/F1, RTE, QNLI, MRPC, CoLA, SST-2)."""
    return {
        task: dict(zip(metrics, map(_number, cell.split("/")), strict=True))
        for (task, metrics), cell in zip(TABLE2_COLUMNS, cells, strict=True)
    }


def _xnli_row(cells: str) -> Dict[str, Number]:
    """One row of Table 3 as printed: the 15 languages in the paper's order, then the average."""
    return dict(zip(catalog.XNLI_LANGUAGES + ("avg",), map(_number, cells.split()), strict=True))


def _rouge_row(*cells: str) -> Dict[str, Optional[Dict[str, Number]]]:
    """One row of Table 4: "R-1/R-2/R-L" per dataset in catalog.SUMMARIZATION's order, "-" for none."""
    return {
        dataset: None if cell == "-" else dict(zip(catalog.ROUGE, map(_number, cell.split("/")), strict=True))
        for dataset, cell in zip(catalog.SUMMARIZATION, cells, strict=True)
    }


# Table 2: GLUE dev, RoBERTa-large. task -> {metric: value}; metric names as in records.py.
# Left: the best of 10 seeds (FreeLB and SMART: the numbers published by their authors).
TABLE2_MAX: Dict[str, Dict[str, Dict[str, Number]]] = {
    "std": _glue_row("90.2/-", "92.2/-", "86.6", "94.7", "89.1", "68.0", "96.4"),
    "std++": _glue_row("91.0/-", "92.2/-", "87.4", "94.8", "91.1", "69.4", "96.9"),
    "freelb": _glue_row("90.6/-", "92.6/-", "88.1", "95.0", "-", "71.1", "96.7"),
    "smart": _glue_row("91.1/91.3", "92.4/89.8", "92.0", "95.6", "89.2", "70.6", "96.9"),
    "r3f": _glue_row("91.1/91.3", "92.4/89.9", "88.5", "95.3", "91.6", "71.2", "97.0"),
    "r4f": _glue_row("90.1/90.8", "92.5/89.9", "88.8", "95.1", "90.9", "70.6", "97.1"),
}

# Right: the median of 10 seeds (no FreeLB row).
TABLE2_MEDIAN: Dict[str, Dict[str, Dict[str, Number]]] = {
    "std": _glue_row("90.2/-", "91.9/-", "86.6", "92.1", "84.4", "66.2", "96.4"),
    "std++": _glue_row("90.8/-", "92.1/-", "87.4", "92.5", "89.1", "68.4", "96.9"),
    "smart": _glue_row("90.85/91.10", "91.7/88.2", "89.5", "94.8", "83.9", "69.4", "96.6"),
    "r3f": _glue_row("91.10/91.10", "92.1/88.4", "88.4", "95.1", "91.2", "70.6", "96.2"),
    "r4f": _glue_row("90.0/90.6", "91.8/88.2", "88.3", "94.8", "90.1", "70.1", "96.8"),
}

# Table 3: XNLI test, zero-shot from English MNLI, XLM-R large (Base: the XLM-R paper), average of 5 runs.
TABLE3: Dict[str, Dict[str, Number]] = {
    "XLM-R Base": _xnli_row("85.8 79.7 80.7 78.7 77.5 79.6 78.1 74.2 73.8 76.5 74.6 76.7 72.4 66.5 68.3 76.2"),
    "XLM-R Large": _xnli_row("89.1 84.1 85.1 83.9 82.9 84.0 81.2 79.6 79.8 80.8 78.1 80.2 76.9 73.9 73.8 80.9"),
    "+ R3F": _xnli_row("89.4 84.2 85.1 83.7 83.6 84.6 82.3 80.7 80.6 81.1 79.4 80.1 77.3 72.6 74.2 81.2"),
    "+ R4F": _xnli_row("89.6 84.7 85.2 84.2 83.6 84.6 82.5 80.3 80.5 80.9 79.2 80.6 78.2 72.7 73.9 81.4"),
    "InfoXLM": _xnli_row("89.7 84.5 85.5 84.1 83.4 84.2 81.3 80.9 80.4 80.8 78.9 80.9 77.9 74.8 73.7 81.4"),
}
# Our method -> the paper's row it reproduces (standard fine-tuning of XLM-R large is "XLM-R Large").
TABLE3_ROW_FOR_METHOD: Dict[str, str] = {"std": "XLM-R Large", "r3f": "+ R3F", "r4f": "+ R4F"}

# Table 4: summarisation test ROUGE F1 x 100.
TABLE4: Dict[str, Dict[str, Optional[Dict[str, Number]]]] = {
    "Random Transformer": _rouge_row("38.27/15.03/35.48", "35.70/16.75/32.83", "15.89/1.94/12.22"),
    "BART": _rouge_row("44.16/21.28/40.90", "39.29/20.09/35.65", "24.19/8.12/21.31"),
    "PEGASUS": _rouge_row("44.17/21.47/41.11", "39.12/19.86/36.24", "26.63/9.01/21.60"),
    "ERNIE-GEN": _rouge_row("44.02/21.17/41.26", "39.25/20.25/36.53", "-"),
    "ProphetNet": _rouge_row("44.20/21.17/41.30", "39.51/20.42/36.69", "-"),
    "BART+R3F": _rouge_row("44.38/21.53/41.17", "40.45/20.69/36.56", "30.31/10.98/24.74"),
}
TABLE4_ROW_FOR_METHOD: Dict[str, str] = {"std": "BART", "r3f": "BART+R3F"}
