"""The paper's published numbers (Tables 2-4), as data, so that ``rxf-report`` prints them next to ours.

Typed in from Aghajanyan et al. 2020 ("Better Fine-Tuning by Reducing Representational Collapse"); ``None``
is the paper's "-" (not reported). All numbers are percentages (CoLA: MCC x 100). Rows are keyed by our
method names (``records.METHODS``) where the paper ran that method, plus ``"freelb"`` (published by others,
Table 2 left only). The tests check the invariants the paper's own numbers obey (e.g. Table 3's averages).
"""

from typing import Dict, Optional, Tuple

Number = Optional[float]

# Table 2: GLUE dev, RoBERTa-large. task -> {metric: value}; metric names as in records.py.
# Left: the best of 10 seeds (FreeLB and SMART: the numbers published by their authors).
TABLE2_MAX: Dict[str, Dict[str, Dict[str, Number]]] = {
    "std": {"MNLI": {"accuracy": 90.2, "accuracy_mm": None}, "QQP": {"accuracy": 92.2, "f1": None},
            "RTE": {"accuracy": 86.6}, "QNLI": {"accuracy": 94.7}, "MRPC": {"accuracy": 89.1},
            "CoLA": {"mcc": 68.0}, "SST-2": {"accuracy": 96.4}},
    "std++": {"MNLI": {"accuracy": 91.0, "accuracy_mm": None}, "QQP": {"accuracy": 92.2, "f1": None},
              "RTE": {"accuracy": 87.4}, "QNLI": {"accuracy": 94.8}, "MRPC": {"accuracy": 91.1},
              "CoLA": {"mcc": 69.4}, "SST-2": {"accuracy": 96.9}},
    "freelb": {"MNLI": {"accuracy": 90.6, "accuracy_mm": None}, "QQP": {"accuracy": 92.6, "f1": None},
               "RTE": {"accuracy": 88.1}, "QNLI": {"accuracy": 95.0}, "MRPC": {"accuracy": None},
               "CoLA": {"mcc": 71.1}, "SST-2": {"accuracy": 96.7}},
    "smart": {"MNLI": {"accuracy": 91.1, "accuracy_mm": 91.3}, "QQP": {"accuracy": 92.4, "f1": 89.8},
              "RTE": {"accuracy": 92.0}, "QNLI": {"accuracy": 95.6}, "MRPC": {"accuracy": 89.2},
              "CoLA": {"mcc": 70.6}, "SST-2": {"accuracy": 96.9}},
    "r3f": {"MNLI": {"accuracy": 91.1, "accuracy_mm": 91.3}, "QQP": {"accuracy": 92.4, "f1": 89.9},
            "RTE": {"accuracy": 88.5}, "QNLI": {"accuracy": 95.3}, "MRPC": {"accuracy": 91.6},
            "CoLA": {"mcc": 71.2}, "SST-2": {"accuracy": 97.0}},
    "r4f": {"MNLI": {"accuracy": 90.1, "accuracy_mm": 90.8}, "QQP": {"accuracy": 92.5, "f1": 89.9},
            "RTE": {"accuracy": 88.8}, "QNLI": {"accuracy": 95.1}, "MRPC": {"accuracy": 90.9},
            "CoLA": {"mcc": 70.6}, "SST-2": {"accuracy": 97.1}},
}

# Right: the median of 10 seeds (no FreeLB row).
TABLE2_MEDIAN: Dict[str, Dict[str, Dict[str, Number]]] = {
    "std": {"MNLI": {"accuracy": 90.2, "accuracy_mm": None}, "QQP": {"accuracy": 91.9, "f1": None},
            "RTE": {"accuracy": 86.6}, "QNLI": {"accuracy": 92.1}, "MRPC": {"accuracy": 84.4},
            "CoLA": {"mcc": 66.2}, "SST-2": {"accuracy": 96.4}},
    "std++": {"MNLI": {"accuracy": 90.8, "accuracy_mm": None}, "QQP": {"accuracy": 92.1, "f1": None},
              "RTE": {"accuracy": 87.4}, "QNLI": {"accuracy": 92.5}, "MRPC": {"accuracy": 89.1},
              "CoLA": {"mcc": 68.4}, "SST-2": {"accuracy": 96.9}},
    "smart": {"MNLI": {"accuracy": 90.85, "accuracy_mm": 91.10}, "QQP": {"accuracy": 91.7, "f1": 88.2},
              "RTE": {"accuracy": 89.5}, "QNLI": {"accuracy": 94.8}, "MRPC": {"accuracy": 83.9},
              "CoLA": {"mcc": 69.4}, "SST-2": {"accuracy": 96.6}},
    "r3f": {"MNLI": {"accuracy": 91.10, "accuracy_mm": 91.10}, "QQP": {"accuracy": 92.1, "f1": 88.4},
            "RTE": {"accuracy": 88.4}, "QNLI": {"accuracy": 95.1}, "MRPC": {"accuracy": 91.2},
            "CoLA": {"mcc": 70.6}, "SST-2": {"accuracy": 96.2}},
    "r4f": {"MNLI": {"accuracy": 90.0, "accuracy_mm": 90.6}, "QQP": {"accuracy": 91.8, "f1": 88.2},
            "RTE": {"accuracy": 88.3}, "QNLI": {"accuracy": 94.8}, "MRPC": {"accuracy": 90.1},
            "CoLA": {"mcc": 70.1}, "SST-2": {"accuracy": 96.8}},
}

# Table 3: XNLI test, zero-shot from English MNLI, XLM-R large (Base: the XLM-R paper), average of 5 runs.
XNLI_LANGUAGES: Tuple[str, ...] = ("en", "fr", "es", "de", "el", "bg", "ru", "tr", "ar", "vi", "th", "zh", "hi",
                                   "sw", "ur")


def _xnli_row(*values: float) -> Dict[str, Number]:
    assert len(values) == len(XNLI_LANGUAGES) + 1, values
    return dict(zip(XNLI_LANGUAGES + ("avg",), values))


TABLE3: Dict[str, Dict[str, Number]] = {
    "XLM-R Base": _xnli_row(85.8, 79.7, 80.7, 78.7, 77.5, 79.6, 78.1, 74.2, 73.8, 76.5, 74.6, 76.7, 72.4, 66.5,
                            68.3, 76.2),
    "XLM-R Large": _xnli_row(89.1, 84.1, 85.1, 83.9, 82.9, 84.0, 81.2, 79.6, 79.8, 80.8, 78.1, 80.2, 76.9, 73.9,
                             73.8, 80.9),
    "+ R3F": _xnli_row(89.4, 84.2, 85.1, 83.7, 83.6, 84.6, 82.3, 80.7, 80.6, 81.1, 79.4, 80.1, 77.3, 72.6, 74.2,
                       81.2),
    "+ R4F": _xnli_row(89.6, 84.7, 85.2, 84.2, 83.6, 84.6, 82.5, 80.3, 80.5, 80.9, 79.2, 80.6, 78.2, 72.7, 73.9,
                       81.4),
    "InfoXLM": _xnli_row(89.7, 84.5, 85.5, 84.1, 83.4, 84.2, 81.3, 80.9, 80.4, 80.8, 78.9, 80.9, 77.9, 74.8, 73.7,
                         81.4),
}
# Our method -> the paper's row it reproduces (standard fine-tuning of XLM-R large is "XLM-R Large").
TABLE3_ROW_FOR_METHOD: Dict[str, str] = {"std": "XLM-R Large", "r3f": "+ R3F", "r4f": "+ R4F"}

# Table 4: summarisation test ROUGE F1 x 100. dataset -> {rouge1, rouge2, rougeL}; None: not reported.
SUMMARIZATION_DATASETS: Dict[str, str] = {"cnn_dm": "CNN/DailyMail", "gigaword": "Gigaword",
                                          "reddit_tifu": "Reddit TIFU (long)"}


def _rouge(r1: float, r2: float, rl: float) -> Dict[str, Number]:
    return {"rouge1": r1, "rouge2": r2, "rougeL": rl}


TABLE4: Dict[str, Dict[str, Optional[Dict[str, Number]]]] = {
    "Random Transformer": {"cnn_dm": _rouge(38.27, 15.03, 35.48), "gigaword": _rouge(35.70, 16.75, 32.83),
                           "reddit_tifu": _rouge(15.89, 1.94, 12.22)},
    "BART": {"cnn_dm": _rouge(44.16, 21.28, 40.90), "gigaword": _rouge(39.29, 20.09, 35.65),
             "reddit_tifu": _rouge(24.19, 8.12, 21.31)},
    "PEGASUS": {"cnn_dm": _rouge(44.17, 21.47, 41.11), "gigaword": _rouge(39.12, 19.86, 36.24),
                "reddit_tifu": _rouge(26.63, 9.01, 21.60)},
    "ERNIE-GEN": {"cnn_dm": _rouge(44.02, 21.17, 41.26), "gigaword": _rouge(39.25, 20.25, 36.53),
                  "reddit_tifu": None},
    "ProphetNet": {"cnn_dm": _rouge(44.20, 21.17, 41.30), "gigaword": _rouge(39.51, 20.42, 36.69),
                   "reddit_tifu": None},
    "BART+R3F": {"cnn_dm": _rouge(44.38, 21.53, 41.17), "gigaword": _rouge(40.45, 20.69, 36.56),
                 "reddit_tifu": _rouge(30.31, 10.98, 24.74)},
}
TABLE4_ROW_FOR_METHOD: Dict[str, str] = {"std": "BART", "r3f": "BART+R3F"}

# The paper's names for our methods (Tables 2-4 and Figures 1-5).
METHOD_NAMES: Dict[str, str] = {"std": "STD", "std++": "STD++", "smart": "SMART", "r3f": "R3F", "r4f": "R4F",
                                "fast-r3f": "R3F (fast)", "freelb": "FreeLB", "none": "not fine-tuned"}
