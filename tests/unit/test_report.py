"""rxf-report on synthetic records with known answers: selection, max/median/mean, probes, figures, bad input."""

import ast
import csv
import json
import math
import os
import runpy
import signal
import statistics
import sys
import time

import pytest

from rxf_repro import catalog, cli, figures, outputs, records, report, selection, tables
from rxf_repro import paper_results as paper

PNG_SIGNATURE = b"\x89PNG\r\n\x1a\n"
LANGS = catalog.XNLI_LANGUAGES


def put(root, kind, task, method, seed, metrics, hparams=None, tiny=False, checked=True, **extra):
    """Write one run record where the run scripts would: ROOT/KIND/TASK/METHOD/SETTING/seedN/record.json."""
    hparams = hparams or {}
    setting = ",".join(f"{k}={v}" for k, v in sorted(hparams.items())) or "default"
    probe = extra.get("probe") or {}
    where = f"{probe.get('protocol', '')}{probe.get('step', '')}{probe.get('cycle', '')}"
    path = os.path.join(str(root), kind, task, method, setting + where, f"seed{seed}", records.RECORD_NAME)
    record = dict(kind=kind, task=task, method=method, seed=seed, hparams=hparams, metrics=metrics, tiny=tiny, **extra)
    if not checked:  # a record no rxf-run writes (records.write_record refuses it), as a hand-edited file would be
        with pytest.raises(cli.UserError):
            records.write_record(path, record)
        os.makedirs(os.path.dirname(path), exist_ok=True)
        with open(path, "w", encoding="utf-8") as f:
            json.dump(dict(version=records.VERSION, **record), f)
        return path
    return records.write_record(path, record)


def glue_records(root, tiny=False):
    """RTE r3f: setting lambda=1 (median 85) beats lambda=0.1 (median 71) although 0.1 has the best seed (95)."""
    for seed, acc in enumerate([80.0, 90.0, 85.0], 1):
        put(root, "glue", "RTE", "r3f", seed, {"accuracy": acc}, {"r3f_lambda": 1.0}, tiny, time_to_best_s=100.0 + seed)
    for seed, acc in enumerate([70.0, 95.0, 71.0], 1):
        put(root, "glue", "RTE", "r3f", seed, {"accuracy": acc}, {"r3f_lambda": 0.1}, tiny, time_to_best_s=50.0)
    for seed, acc in enumerate([94.0, 96.0, 95.0, 93.0], 1):  # even count: median 94.5
        put(root, "glue", "SST-2", "std", seed, {"accuracy": acc}, tiny=tiny, time_to_best_s=200.0 + 10 * seed)
    for seed, acc in enumerate([95.0, 97.0, 96.5], 1):
        put(
            root,
            "glue",
            "SST-2",
            "r3f",
            seed,
            {"accuracy": acc},
            {"r3f_lambda": 1.0},
            tiny,
            time_to_best_s=300.0 + 7 * seed,
        )
    for seed, (m, mm) in enumerate([(90.0, 91.0), (92.0, 90.5)], 1):  # columns are independent: 92/91, 91/90.75
        put(root, "glue", "MNLI", "r3f", seed, {"accuracy": m, "accuracy_mm": mm}, tiny=tiny)
    for seed, (acc, f1) in enumerate([(91.0, 88.0), (92.0, 87.0), (91.5, 89.0)], 1):
        put(root, "glue", "QQP", "r4f", seed, {"accuracy": acc, "f1": f1}, tiny=tiny)
    put(root, "glue", "CoLA", "std++", 1, {"mcc": 65.0, "accuracy": 80.0}, tiny=tiny)
    put(
        root,
        "glue",
        "STS-B",
        "fast-r3f",
        1,
        {"pearson": 91.0, "spearman": 90.0, "pearson_and_spearman": 90.5},
        tiny=tiny,
    )


def xnli_records(root, with_validation=True):
    """Setting u: better validation (85 vs 80), worse test; seeds 1-2 average to 71 + i per language."""
    for seed, base in ((1, 70.0), (2, 72.0)):
        extra = {"valid_accuracy": 85.0} if with_validation else {}
        put(
            root,
            "xnli",
            "XNLI",
            "r3f",
            seed,
            {lang: base + i for i, lang in enumerate(LANGS)},
            {"noise_type": "uniform"},
            **extra,
        )
        extra = {"valid_accuracy": 80.0} if with_validation else {}
        put(
            root,
            "xnli",
            "XNLI",
            "r3f",
            seed,
            {lang: base + 5 + i for i, lang in enumerate(LANGS)},
            {"noise_type": "normal"},
            **extra,
        )
    put(root, "xnli", "XNLI", "std", 1, {lang: 60.0 for lang in LANGS}, valid_accuracy=70.0)


def summarization_records(root, with_validation=True):
    """cnn_dm r3f: lambda=0.01 has the lower valid_loss, lambda=0.1 the higher test ROUGE-L."""
    for seed, (r1, r2, rl) in enumerate([(44.0, 21.0, 41.0), (45.0, 22.0, 42.0)], 1):
        put(
            root,
            "summarization",
            "cnn_dm",
            "r3f",
            seed,
            {"rouge1": r1, "rouge2": r2, "rougeL": rl},
            {"r3f_lambda": 0.01},
            **({"valid_loss": 3.0} if with_validation else {}),
        )
        put(
            root,
            "summarization",
            "cnn_dm",
            "r3f",
            seed,
            {"rouge1": r1 + 1, "rouge2": r2 + 1, "rougeL": rl + 1},
            {"r3f_lambda": 0.1},
            **({"valid_loss": 3.5} if with_validation else {}),
        )
    put(root, "summarization", "gigaword", "std", 1, {"rouge1": 39.0, "rouge2": 20.0, "rougeL": 36.0}, valid_loss=4.0)


CHAIN = ["SST-2", "QNLI", "QQP", "RTE"]


def probe_records(root, tiny=False):
    for method, accs in (
        ("std++", {"MNLI": [60.0, 64.0], "QNLI": [70.0, 70.0]}),
        ("r4f", {"MNLI": [66.0, 68.0, 70.0], "QNLI": [75.0]}),
    ):
        for task, values in accs.items():
            for seed, acc in enumerate(values, 1):
                put(
                    root,
                    "probe",
                    task,
                    method,
                    seed,
                    {"accuracy": acc},
                    tiny=tiny,
                    probe={"protocol": "generalisation", "source": "SST-2", "chain": ["SST-2"], "step": 0},
                )
    for method, start in (("std++", 90.0), ("r4f", 92.0)):
        for step in range(len(CHAIN)):
            for seed in (1, 2):
                put(
                    root,
                    "probe",
                    "SST-2",
                    method,
                    seed,
                    {"accuracy": start - 5 * step + seed},
                    tiny=tiny,
                    probe={
                        "protocol": "degradation",
                        "source": "SST-2",
                        "chain": CHAIN,
                        "step": step,
                        "finetuned_on": CHAIN[step],
                    },
                )
        for cycle in (1, 2, 3):
            for step, task in enumerate(CHAIN):
                put(
                    root,
                    "probe",
                    task,
                    method,
                    1,
                    {"accuracy": start - cycle - step},
                    tiny=tiny,
                    probe={
                        "protocol": "retention",
                        "source": "SST-2",
                        "chain": CHAIN,
                        "step": step,
                        "cycle": cycle,
                        "finetuned_on": task,
                    },
                )


GLUE_TASKS = {
    "MNLI": ("accuracy", "accuracy_mm"),
    "QQP": ("accuracy", "f1"),
    "RTE": ("accuracy",),
    "QNLI": ("accuracy",),
    "MRPC": ("accuracy",),
    "CoLA": ("mcc",),
    "SST-2": ("accuracy",),
}
METHODS = ("std", "std++", "smart", "r3f", "r4f", "fast-r3f")


def realistic_records(root, tiny=False):
    """Records shaped like a paper-scale study: six methods on seven GLUE tasks, 3-10 seeds, two settings for
    R3F/R4F, time_to_best_s; probes of all three protocols with the pretrained model. Half-point differences,
    as in the paper, so that the figures must show them."""
    base = {"MNLI": 90.0, "QQP": 91.5, "RTE": 86.0, "QNLI": 94.0, "MRPC": 89.0, "CoLA": 67.0, "SST-2": 96.0}
    for t, (task, names) in enumerate(GLUE_TASKS.items()):
        for m, method in enumerate(METHODS):
            settings = (
                [{"r3f_lambda": 1.0, "noise_type": "uniform"}, {"r3f_lambda": 0.5, "noise_type": "normal"}]
                if method in ("r3f", "r4f")
                else [{}]
            )
            for s, hparams in enumerate(settings):
                for seed in range(1, (10 if s == 0 else 3) + 1):
                    value = base[task] + 0.4 * m + 0.3 * ((seed * 7 + t) % 5) - 0.6 * s
                    metrics = {name: round(value - 1.5 * i, 2) for i, name in enumerate(names)}
                    put(
                        root / "glue",
                        "glue",
                        task,
                        method,
                        seed,
                        metrics,
                        hparams,
                        tiny,
                        time_to_best_s=round(3600 * (1.0 + 0.15 * m) + 120 * ((seed * 3) % 7), 1),
                        command=["fairseq_cli.train", "glue-bin", "--arch", "roberta_large"],
                    )
    chain = ["SST-2", "QNLI", "QQP", "RTE"]
    probe_tasks = ["MNLI", "QNLI", "QQP", "RTE", "MRPC", "CoLA"]
    for m, method in enumerate(("none", "std++", "r4f")):
        for i, task in enumerate(probe_tasks):
            for seed in (1, 2, 3):
                put(
                    root / "probe",
                    "probe",
                    task,
                    method,
                    seed,
                    {"accuracy": 60.0 + 2 * i + 0.5 * m + 0.4 * seed},
                    tiny=tiny,
                    command=["fairseq_cli.train", "--arch", "roberta_large"],
                    probe={
                        "protocol": "generalisation",
                        "source": "SST-2",
                        "chain": [],
                        "step": 0,
                        "finetuned_on": "none" if method == "none" else "SST-2",
                    },
                )
        if method == "none":
            continue
        for step, name in enumerate(chain):
            for seed in (1, 2, 3):
                put(
                    root / "probe",
                    "probe",
                    "SST-2",
                    method,
                    seed,
                    {"accuracy": 95.0 - (2.5 - m) * step + 0.3 * seed},
                    tiny=tiny,
                    probe={
                        "protocol": "degradation",
                        "source": "SST-2",
                        "chain": chain,
                        "step": step,
                        "finetuned_on": name,
                    },
                )
        for cycle in (1, 2, 3):
            for step, task in enumerate(chain):
                for seed in (1, 2):
                    put(
                        root / "probe",
                        "probe",
                        task,
                        method,
                        seed,
                        {"accuracy": 85.0 - 2 * step - (1.5 - 0.5 * m) * cycle + 0.4 * seed},
                        tiny=tiny,
                        probe={
                            "protocol": "retention",
                            "source": "SST-2",
                            "chain": chain,
                            "step": step,
                            "cycle": cycle,
                            "finetuned_on": task,
                        },
                    )


def run(argv, capsys):
    code = report.main([str(a) for a in argv])
    captured = capsys.readouterr()
    return code, captured.out, captured.err


def read_csv(path):
    with open(path, newline="") as f:
        return list(csv.DictReader(f))


def summary(out):
    with open(os.path.join(out, "summary.json")) as f:
        return json.load(f)


def entry(entries, **match):
    found = [e for e in entries if all(e[k] == v for k, v in match.items())]
    assert len(found) == 1, (match, found)
    return found[0]


# ------------------------------------------------------------------------------------------ tables


@pytest.fixture(scope="module")
def full_report(tmp_path_factory):
    """One report from every kind of record (made once: rendering the figures is the slow part)."""
    root = tmp_path_factory.mktemp("records")
    glue_records(root / "glue")
    xnli_records(root / "xnli")
    summarization_records(root / "summ")
    probe_records(root / "probe")
    out = tmp_path_factory.mktemp("reports") / "report"
    code = report.main([str(root), "--out", str(out)])
    assert code == 0
    return str(out)


def test_table2_selection_max_and_median(full_report):
    table2 = summary(full_report)["table2"]
    rte = entry(table2, task="RTE", method="r3f")
    assert rte["setting"] == {"r3f_lambda": 1.0} and rte["settings_compared"] == 2
    assert rte["selection_score"] == 85.0
    assert rte["max"] == {"accuracy": 90.0} and rte["median"] == {"accuracy": 85.0}  # not the other setting's 95
    assert rte["n"] == 3 and rte["seeds"] == [1, 2, 3]
    sst = entry(table2, task="SST-2", method="std")
    assert sst["max"]["accuracy"] == 96.0 and sst["median"]["accuracy"] == 94.5 and sst["n"] == 4
    mnli = entry(table2, task="MNLI", method="r3f")
    assert mnli["max"] == {"accuracy": 92.0, "accuracy_mm": 91.0}
    assert mnli["median"] == {"accuracy": 91.0, "accuracy_mm": 90.75}
    qqp = entry(table2, task="QQP", method="r4f")
    assert qqp["max"] == {"accuracy": 92.0, "f1": 89.0} and qqp["median"] == {"accuracy": 91.5, "f1": 88.0}
    assert entry(table2, task="CoLA", method="std++")["max"] == {"mcc": 65.0}
    assert entry(table2, task="STS-B", method="fast-r3f")["median"] == {"pearson": 91.0}
    assert mnli["paper_max"] == {"accuracy": 91.1, "accuracy_mm": 91.3}


def test_a_grid_on_few_seeds_then_the_best_setting_on_ten_reports_the_ten(tmp_path, capsys):
    """The paper's procedure: the grid on seeds 1-3, then the chosen setting on seeds 1-10. A 3-seed grid point
    with a better median must not displace the 10-seed setting."""
    for seed in range(1, 11):
        put(tmp_path / "runs", "glue", "RTE", "r3f", seed, {"accuracy": 80.0 + seed % 3}, {"r3f_lambda": 1.0})
    for seed in range(1, 4):
        put(tmp_path / "runs", "glue", "RTE", "r3f", seed, {"accuracy": 90.0}, {"r3f_lambda": 0.5})
        put(tmp_path / "runs", "glue", "RTE", "r3f", seed, {"accuracy": 70.0}, {"r3f_lambda": 5.0})
    code, _, err = run([tmp_path / "runs", "--out", tmp_path / "report"], capsys)
    assert code == 0, err
    rte = entry(summary(tmp_path / "report")["table2"], task="RTE", method="r3f")
    assert rte["setting"] == {"r3f_lambda": 1.0} and rte["n"] == 10 and rte["max"] == {"accuracy": 82.0}
    assert rte["settings_compared"] == 1 and rte["settings_with_fewer_seeds"] == 2
    assert "1 (+2 with fewer seeds, not compared)" in open(tmp_path / "report" / "table2.md").read()


def test_table2_files(full_report):
    rows = read_csv(os.path.join(full_report, "table2.csv"))
    mnli_mm = [r for r in rows if (r["statistic"], r["task"], r["metric"]) == ("median", "MNLI", "accuracy_mm")]
    assert mnli_mm == [
        {
            "statistic": "median",
            "method": "r3f",
            "task": "MNLI",
            "metric": "accuracy_mm",
            "ours": "90.75",
            "paper": "91.10",
            "seeds": "2",
            "setting": "default",
            "selected_by": "median accuracy over seeds",
            "tiny": "false",
        }
    ]
    text = open(os.path.join(full_report, "table2.md")).read()
    header = "| method | MNLI m/mm | QQP acc/F1 | RTE | CoLA (MCC) | SST-2 | STS-B (Pearson)* | settings searched |"
    assert text.count(header) == 2  # the max table and the median table
    # the last column: the settings each method's records hold per task (the search budget)
    assert "| R3F (ours) | 92.00/91.00 | - | 90.00 | - | 97.00 | - | 1-2 |" in text
    assert "| R3F (paper) | 91.1/91.3 | 92.4/89.9 | 88.5 | 71.2 | 97.0 | - |  |" in text
    assert "| R4F (ours) | - | 91.50/88.00 | - | - | - | - | 1 |" in text  # the median table
    assert "R3F (fast) (paper)" not in text and "not in the paper" in text
    assert selection.TINY_LABEL not in text


def test_table3_xnli(full_report, tmp_path, capsys):
    xnli = {e["method"]: e for e in summary(full_report)["table3"]}
    r3f = xnli["r3f"]
    assert r3f["setting"] == {"noise_type": "uniform"} and r3f["selected_by"].startswith("mean valid_accuracy")
    assert r3f["languages"] == {lang: 71.0 + i for i, lang in enumerate(LANGS)}
    assert r3f["avg"] == pytest.approx(78.0) and r3f["n"] == 2
    assert r3f["paper_row"] == "+ R3F" and xnli["std"]["paper_row"] == "XLM-R Large"
    text = open(os.path.join(full_report, "table3.md")).read()
    assert "| R3F (ours) | 2 | 71.00 | 72.00 |" in text and "| + R3F (paper) | 5 | 89.4 | 84.2 |" in text
    rows = read_csv(os.path.join(full_report, "table3.csv"))
    assert entry(rows, method="r3f", language="avg")["ours"] == "78.0"
    # without a validation number the test average chooses (and the table says so)
    xnli_records(tmp_path / "recs", with_validation=False)
    assert run([tmp_path / "recs", "--out", tmp_path / "out"], capsys)[0] == 0
    r3f = entry(summary(tmp_path / "out")["table3"], method="r3f")
    assert r3f["setting"] == {"noise_type": "normal"} and "no valid_accuracy" in r3f["selected_by"]
    assert r3f["avg"] == pytest.approx(83.0)


def test_table4_summarization(full_report, tmp_path, capsys):
    cnn = entry(summary(full_report)["table4"], task="cnn_dm", method="r3f")
    assert cnn["setting"] == {"r3f_lambda": 0.01} and cnn["selection_score"] == 3.0
    assert (cnn["rouge1"], cnn["rouge2"], cnn["rougeL"]) == (44.5, 21.5, 41.5)
    text = open(os.path.join(full_report, "table4.md")).read()
    assert "| model | CNN/DailyMail | Gigaword |" in text
    assert "| R3F (ours) | 44.50/21.50/41.50 | - |" in text
    assert "| BART+R3F (paper) | 44.38/21.53/41.17 | 40.45/20.69/36.56 |" in text
    summarization_records(tmp_path / "recs", with_validation=False)
    assert run([tmp_path / "recs", "--out", tmp_path / "out"], capsys)[0] == 0
    cnn = entry(summary(tmp_path / "out")["table4"], task="cnn_dm", method="r3f")
    assert cnn["setting"] == {"r3f_lambda": 0.1} and cnn["rougeL"] == 42.5


def test_r_drop_and_r3fs_controls_are_rows_after_the_papers_methods_when_their_records_exist(tmp_path, capsys):
    """Methods not in the paper (R-Drop, R3F without noise or with the same dropout masks): a row of ours each, after
    the paper's, marked as having no paper row, none invented; no records of them, no such row."""
    put(tmp_path / "paper", "glue", "RTE", "r3f", 1, {"accuracy": 88.0}, {"r3f_lambda": 1.0})
    put(tmp_path / "paper", "summarization", "cnn_dm", "r3f", 1, {"rouge1": 44.0, "rouge2": 21.0, "rougeL": 41.0})
    assert run([tmp_path / "paper", "--out", tmp_path / "without"], capsys)[0] == 0
    for name in ("table2", "table4"):
        text = open(tmp_path / "without" / f"{name}.md").read()
        assert "R-Drop" not in text and "R3F without noise" not in text and tables.PAPERLESS not in text, name
    glue = {"rdrop": 89.0, "r3f-no-noise": 87.5, "r3f-same-dropout": 86.0}
    for method, accuracy in glue.items():
        setting = {"rdrop_alpha": 0.5} if method == "rdrop" else {"r3f_lambda": 1.0}
        put(tmp_path / "extra", "glue", "RTE", method, 1, {"accuracy": accuracy}, setting)
    rouge = {"rouge1": 44.5, "rouge2": 21.5, "rougeL": 41.5}
    put(tmp_path / "extra", "summarization", "cnn_dm", "rdrop", 1, rouge, {"rdrop_alpha": 0.7}, valid_loss=3.0)
    code, _, err = run([tmp_path / "paper", tmp_path / "extra", "--out", tmp_path / "with"], capsys)
    assert code == 0, err
    text = open(tmp_path / "with" / "table2.md").read()
    rows = [line.split(" | ")[0] for line in text.splitlines() if line.startswith("| R")]
    mark = tables.PAPERLESS
    ours = ["R3F (ours)", "R3F (paper)", f"R-Drop (ours){mark}", f"R3F without noise (ours){mark}"]
    assert rows[:5] == ["| " + row for row in [*ours, f"R3F, same dropout masks (ours){mark}"]]  # the max table
    assert "| R-Drop (ours)† | 89.00 | 1 |" in text and "R-Drop (paper)" not in text
    assert "† Not in the paper, so no paper row: R-Drop, R3F without noise, R3F, same dropout masks." in text
    rdrop = entry(summary(tmp_path / "with")["table2"], task="RTE", method="rdrop")
    assert rdrop["setting"] == {"rdrop_alpha": 0.5} and rdrop["paper_max"] is None and rdrop["paper_median"] is None
    assert {r["paper"] for r in read_csv(tmp_path / "with" / "table2.csv") if r["method"] == "rdrop"} == {""}
    text = open(tmp_path / "with" / "table4.md").read()
    assert "| R-Drop (ours)† | 44.50/21.50/41.50 |" in text and "| R3F (ours) |" in text
    assert text.index("| R3F (ours) |") < text.index("| R-Drop (ours)† |") and "no paper row: R-Drop." in text
    assert entry(summary(tmp_path / "with")["table4"], task="cnn_dm", method="rdrop")["paper"] is None


def test_ties_go_to_the_first_setting(tmp_path, capsys):
    for hparams in ({"r3f_lambda": 5.0}, {"r3f_lambda": 0.5}):
        put(tmp_path / "recs", "glue", "RTE", "r3f", 1, {"accuracy": 80.0}, hparams)
    assert run([tmp_path / "recs", "--out", tmp_path / "out"], capsys)[0] == 0
    assert summary(tmp_path / "out")["table2"][0]["setting"] == {"r3f_lambda": 0.5}


def test_probe_tables(full_report):
    probing = summary(full_report)["probing"]
    mnli = entry(probing["generalisation"], task="MNLI", method="std++")
    assert mnli["mean"] == 62.0 and mnli["sample_std"] == pytest.approx(statistics.stdev([60.0, 64.0]))
    assert mnli["n"] == 2
    assert entry(probing["generalisation"], task="QNLI", method="r4f")["sample_std"] is None
    step2 = entry(probing["degradation"], task="SST-2", method="r4f", step=2)
    assert step2["mean"] == 92.0 - 10 + 1.5 and step2["finetuned_on"] == "QQP"
    assert entry(probing["retention"], task="QQP", method="std++", cycle=3)["mean"] == 90.0 - 3 - 2
    text = open(os.path.join(full_report, "probing_generalisation.md")).read()
    assert "| source | probed task | Standard++ | R4F |" in text  # catalog.METHOD_NAMES
    assert "| SST-2 | MNLI | 62.00 ± 2.83 (n=2) | 68.00 ± 2.00 (n=3) |" in text
    degradation = read_csv(os.path.join(full_report, "probing_degradation.csv"))
    assert [(r["step"], r["finetuned_on"]) for r in degradation if r["method"] == "r4f"] == [
        (str(i), task) for i, task in enumerate(CHAIN)
    ]
    retention = read_csv(os.path.join(full_report, "probing_retention.csv"))
    assert len(retention) == 2 * 3 * len(CHAIN)
    assert list(dict.fromkeys(r["task"] for r in retention)) == CHAIN  # in chain order
    assert "selection_rule" in summary(full_report) and summary(full_report)["selection_rule"].startswith("1. ")


def test_every_file_is_written_and_listed(full_report):
    expected = {
        "table2.md",
        "table2.csv",
        "table3.md",
        "table3.csv",
        "table4.md",
        "table4.csv",
        "figure1_walltime.png",
        "figure2_seeds.png",
        "summary.json",
    }
    expected |= {f"probing_{p}.{ext}" for p in catalog.PROTOCOLS for ext in ("md", "csv")}
    expected |= {name for name, _ in figures.PROBE_FIGURES.values()}
    assert set(os.listdir(full_report)) == expected | {outputs.MARKER}
    assert set(summary(full_report)["files"]) == expected
    assert not [f for f in os.listdir(os.path.dirname(full_report)) if f.startswith(".")]  # no temp folders


def test_pngs_are_drawn(full_report):
    from matplotlib.image import imread

    for name in [f for f in os.listdir(full_report) if f.endswith(".png")]:
        path = os.path.join(full_report, name)
        with open(path, "rb") as f:
            assert f.read(8) == PNG_SIGNATURE, name
        assert os.path.getsize(path) > 15_000, name
        pixels = imread(path)[..., :3].reshape(-1, 3)
        ink = (pixels < 0.9).any(axis=1).mean()  # share of pixels that are not (near) white
        assert 0.01 < ink < 0.9, (name, ink)


def test_figure1_uses_the_selected_seeds(full_report):
    figure1 = summary(full_report)["figure1"]
    assert figure1["task"] == "SST-2"
    assert figure1["time_to_best_s"] == {"std": [210.0, 220.0, 230.0, 240.0], "r3f": [307.0, 314.0, 321.0]}
    assert summary(full_report)["figure2"]["RTE"]["values"] == {"r3f": [80.0, 90.0, 85.0]}


# ------------------------------------------------------------------------------------------ tiny runs


def test_tiny_runs_are_labelled_everywhere(tmp_path, capsys, monkeypatch):
    from matplotlib.figure import Figure

    titles = {}
    save = Figure.savefig

    def spy(self, path, **kwargs):
        texts = [self._suptitle.get_text()] if self._suptitle else []
        titles[os.path.basename(path)] = texts + [ax.get_title() for ax in self.axes]
        return save(self, path, **kwargs)

    monkeypatch.setattr(Figure, "savefig", spy)
    glue_records(tmp_path / "recs", tiny=True)
    probe_records(tmp_path / "recs", tiny=True)
    code, out, _ = run([tmp_path / "recs", "--out", tmp_path / "out", "--figure2-tasks", "RTE", "SST-2"], capsys)
    assert code == 0
    written = out.split()
    assert len(written) == len(os.listdir(tmp_path / "out")) - 1 and all(os.path.isfile(p) for p in written)
    for path in written:
        if path.endswith(".md"):
            headers = [line for line in open(path) if line.startswith("#") and "Selected settings" not in line]
            assert headers and all(selection.TINY_LABEL in h for h in headers), path
        elif path.endswith(".csv"):
            assert {r["tiny"] for r in read_csv(path)} == {"true"}, path
    assert len(titles) == 5 and all(any(selection.TINY_LABEL in t for t in texts) for texts in titles.values())
    assert summary(tmp_path / "out")["tiny"] is True
    assert list(summary(tmp_path / "out")["figure2"]) == ["RTE", "SST-2"]


# ------------------------------------------------------------------------------------------ bad input


def assert_refused(tmp_path, capsys, argv, message):
    before = set(os.listdir(tmp_path))
    code, out, err = run(argv, capsys)
    assert code != 0 and out == ""
    assert message in err, err
    assert set(os.listdir(tmp_path)) == before  # no report folder, no temporary folder left behind


def test_no_records(tmp_path, capsys):
    (tmp_path / "empty").mkdir()
    assert_refused(tmp_path, capsys, [tmp_path / "empty", "--out", tmp_path / "out"], "no record.json under")
    assert_refused(tmp_path, capsys, [tmp_path / "missing", "--out", tmp_path / "out"], "no such file or folder")


def test_malformed_record_names_the_file(tmp_path, capsys):
    glue_records(tmp_path / "recs")
    bad = tmp_path / "recs" / "broken" / "record.json"
    bad.parent.mkdir()
    bad.write_text('{"kind": "glue",\n  "task": }\n')
    assert_refused(tmp_path, capsys, [tmp_path / "recs", "--out", tmp_path / "out"], f"{bad}:2: not JSON")
    bad.write_text(
        json.dumps(
            {
                "version": 1,
                "kind": "glue",
                "task": "RTE",
                "method": "r3f",
                "seed": 1,
                "hparams": {},
                "metrics": {"accuracy": "high"},
            }
        )
    )
    assert_refused(tmp_path, capsys, [tmp_path / "recs", "--out", tmp_path / "out"], f"{bad}: metric 'accuracy'")


def test_mixed_tiny_and_full_runs(tmp_path, capsys):
    glue_records(tmp_path / "full")
    put(tmp_path / "tiny", "glue", "RTE", "std", 1, {"accuracy": 50.0}, tiny=True)
    assert_refused(
        tmp_path, capsys, [tmp_path / "full", tmp_path / "tiny", "--out", tmp_path / "out"], "mix tiny test runs"
    )


def test_records_the_tables_cannot_use(tmp_path, capsys):
    put(tmp_path / "a", "glue", "WNLI", "std", 1, {"accuracy": 50.0}, checked=False)
    assert_refused(tmp_path, capsys, [tmp_path / "a", "--out", tmp_path / "out"], "GLUE task 'WNLI'")
    path = put(tmp_path / "b", "glue", "CoLA", "std", 1, {"accuracy": 50.0})
    assert_refused(tmp_path, capsys, [tmp_path / "b", "--out", tmp_path / "out"], f"{path}: no metric 'mcc'")
    first = put(tmp_path / "c", "glue", "RTE", "std", 1, {"accuracy": 50.0})
    records.write_record(str(tmp_path / "c" / "copy" / "record.json"), json.load(open(first)))
    assert_refused(tmp_path, capsys, [tmp_path / "c", "--out", tmp_path / "out"], "the same run as")
    put(
        tmp_path / "d",
        "probe",
        "MNLI",
        "std",
        1,
        {"accuracy": 50.0},
        checked=False,
        probe={"protocol": "retention", "source": "SST-2"},
    )
    assert_refused(tmp_path, capsys, [tmp_path / "d", "--out", tmp_path / "out"], "probe.cycle should be an int")
    glue_records(tmp_path / "e")
    assert_refused(
        tmp_path,
        capsys,
        [tmp_path / "e", "--out", tmp_path / "out", "--figure1-task", "QNLI"],
        "--figure1-task QNLI: no GLUE records",
    )


def test_an_existing_folder(tmp_path, capsys):
    put(tmp_path / "recs", "glue", "RTE", "std", 1, {"accuracy": 50.0})
    (tmp_path / "mine").mkdir()
    (tmp_path / "mine" / "notes.txt").write_text("keep me")
    assert_refused(tmp_path, capsys, [tmp_path / "recs", "--out", tmp_path / "mine"], "pass --overwrite")
    assert (tmp_path / "mine" / "notes.txt").read_text() == "keep me"
    # an earlier report is replaced as a whole
    xnli_records(tmp_path / "xnli")
    summarization_records(tmp_path / "summ")
    assert run([tmp_path / "xnli", "--out", tmp_path / "out"], capsys)[0] == 0
    assert run([tmp_path / "summ", "--out", tmp_path / "out"], capsys)[0] == 0
    assert sorted(os.listdir(tmp_path / "out")) == [outputs.MARKER, "summary.json", "table4.csv", "table4.md"]


def test_a_failure_leaves_the_previous_report(tmp_path, capsys, monkeypatch):
    put(tmp_path / "recs", "glue", "RTE", "std", 1, {"accuracy": 50.0}, time_to_best_s=10.0)
    assert run([tmp_path / "recs", "--out", tmp_path / "out"], capsys)[0] == 0
    before = {name: open(os.path.join(tmp_path / "out", name), "rb").read() for name in os.listdir(tmp_path / "out")}

    def broken(*args):
        def write(path):
            open(path, "wb").write(b"half a figure")
            raise RuntimeError("the renderer crashed")

        return write

    monkeypatch.setattr(figures, "figure2_writer", broken)
    xnli_records(tmp_path / "recs")
    with pytest.raises(RuntimeError, match="renderer crashed"):
        report.main([str(tmp_path / "recs"), "--out", str(tmp_path / "out")])
    after = {name: open(os.path.join(tmp_path / "out", name), "rb").read() for name in os.listdir(tmp_path / "out")}
    assert after == before
    assert sorted(os.listdir(tmp_path)) == ["out", "recs"]


@pytest.mark.filterwarnings("ignore:'rxf_repro.report' found in sys.modules")
def test_command_line_exit_status(tmp_path, capsys, monkeypatch):
    """``python -m rxf_repro.report`` (and the rxf-report script: ``sys.exit(main())``) exit non-zero."""
    (tmp_path / "empty").mkdir()
    monkeypatch.setattr(sys, "argv", ["rxf-report", str(tmp_path / "empty"), "--out", str(tmp_path / "out")])
    with pytest.raises(SystemExit) as exit_status:  # in-process: a new interpreter would re-import fairseq (6 s)
        runpy.run_module("rxf_repro.report", run_name="__main__")
    assert exit_status.value.code == 1 and "rxf-report: error: no record.json" in capsys.readouterr().err
    assert not (tmp_path / "out").exists()


# ------------------------------------------------------------------------------------------ the paper's numbers


def test_paper_numbers_are_consistent():
    for name, row in paper.TABLE3.items():  # the printed average is the mean of the 15 languages, to rounding
        assert abs(row["avg"] - statistics.fmean(row[lang] for lang in LANGS)) < 0.1, name
    for method, tasks in paper.TABLE2_MEDIAN.items():  # a median never exceeds the max
        for task, values in tasks.items():
            for name, value in values.items():
                best = paper.TABLE2_MAX[method][task][name]
                assert value is None or best is None or value <= best, (method, task, name)
    for name, datasets in paper.TABLE4.items():  # ROUGE-1 >= ROUGE-L >= ROUGE-2
        for scores in filter(None, datasets.values()):
            assert scores["rouge1"] >= scores["rougeL"] >= scores["rouge2"], name
    assert set(paper.TABLE2_MAX) - {"freelb"} == set(paper.TABLE2_MEDIAN)
    demo = set(catalog.DEMO_TASKS.values())  # make demo's WordNet tasks: not in the paper
    assert set(selection.TABLE2_METRICS) - {"STS-B"} - demo == set(paper.TABLE2_MAX["r3f"])


def test_no_paper_leaves_the_published_numbers_out(tmp_path, capsys):
    glue_records(tmp_path / "runs" / "glue")
    xnli_records(tmp_path / "runs" / "xnli")
    summarization_records(tmp_path / "runs" / "summ")
    code, _, err = run([tmp_path / "runs", "--out", tmp_path / "report", "--no-paper"], capsys)
    assert code == 0, err
    for name in ("table2", "table3", "table4"):
        text = open(tmp_path / "report" / f"{name}.md").read()
        assert "(paper)" not in text and "left out (--no-paper)" in text, name
        assert all(row["paper"] == "" for row in read_csv(tmp_path / "report" / f"{name}.csv")), name
    assert entry(summary(tmp_path / "report")["table2"], task="MNLI", method="r3f")["paper_max"] is None


def test_a_probe_of_the_pretrained_model_keeps_its_own_label(tmp_path, capsys):
    """Method none (no fine-tuning) shares its points with the fine-tuned probes; its label must stay "none"."""
    for method, label, acc in (("std", "SST-2", 60.0), ("none", "none", 70.0), ("r4f", "SST-2", 65.0)):
        put(
            tmp_path / "runs",
            "probe",
            "CoLA",
            method,
            1,
            {"accuracy": acc},
            probe={"protocol": "generalisation", "source": "SST-2", "chain": [], "step": 0, "finetuned_on": label},
        )
    code, _, err = run([tmp_path / "runs", "--out", tmp_path / "report"], capsys)
    assert code == 0, err
    rows = {r["method"]: r for r in read_csv(tmp_path / "report" / "probing_generalisation.csv")}
    assert {m: r["finetuned_on"] for m, r in rows.items()} == {"none": "none", "std": "SST-2", "r4f": "SST-2"}
    assert (
        "| SST-2 | CoLA | 70.00 (n=1) | 60.00 (n=1) | 65.00 (n=1) |"
        in open(tmp_path / "report" / "probing_generalisation.md").read()
    )  # "not fine-tuned" first


# ------------------------------------------------------------------------------------------ every printed metric


def mnli_mm_in_one_seed(root):
    for seed in (1, 2, 3):
        put(root, "glue", "MNLI", "r3f", seed, {"accuracy": 90.0, **({"accuracy_mm": 91.0} if seed == 1 else {})})
    return [os.path.join(str(root), "glue", "MNLI", "r3f", "default", f"seed{seed}", "record.json") for seed in (2, 3)]


def xnli_language_missing_in_one_seed(root):
    paths = []
    for seed in (1, 2):
        scores = {lang: 70.0 for lang in LANGS if not (seed == 2 and lang == "sw")}
        paths.append(put(root, "xnli", "XNLI", "r3f", seed, scores, valid_accuracy=80.0))
    return paths[1:]


def rouge_missing_in_one_seed(root):
    paths = [
        put(
            root,
            "summarization",
            "cnn_dm",
            "r3f",
            seed,
            {"rouge1": 44.0, "rougeL": 41.0, **({"rouge2": 21.0} if seed == 1 else {})},
            valid_loss=3.0,
        )
        for seed in (1, 2)
    ]
    return paths[1:]


def probe_accuracy_missing_in_one_seed(root):
    paths = [
        put(
            root,
            "probe",
            "RTE",
            "r4f",
            seed,
            {"accuracy": 60.0} if seed == 1 else {"mcc": 20.0},
            probe={"protocol": "generalisation", "source": "SST-2", "chain": [], "step": 0},
        )
        for seed in (1, 2)
    ]
    return paths[1:]


@pytest.mark.parametrize(
    "make, metric",
    [
        (mnli_mm_in_one_seed, "accuracy_mm"),
        (xnli_language_missing_in_one_seed, "sw"),
        (rouge_missing_in_one_seed, "rouge2"),
        (probe_accuracy_missing_in_one_seed, "accuracy"),
    ],
    ids=["glue", "xnli", "summarization", "probe"],
)
def test_a_metric_missing_in_one_seed_names_the_records_and_the_metric(tmp_path, capsys, make, metric):
    """An MNLI accuracy_mm in 1 of 3 seeds was averaged over 1 and labelled n=3."""
    missing = make(tmp_path / "recs")
    code, out, err = run([tmp_path / "recs", "--out", tmp_path / "out"], capsys)
    assert code == 1 and out == "" and not (tmp_path / "out").exists()
    assert err.count("\n") == 1 and err.startswith("rxf-report: error: "), err
    assert f"no metric {metric!r}" in err and all(path in err for path in missing), err


def glue_f1_nan(root):
    return [
        put(root, "glue", "QQP", "r4f", seed, {"accuracy": 91.0, "f1": math.nan if seed == 2 else 88.0})
        for seed in (1, 2)
    ][1:]


def xnli_language_inf(root):
    return [put(root, "xnli", "XNLI", "r3f", 1, {**{lang: 70.0 for lang in LANGS}, "fr": math.inf})]


def rouge_nan(root):
    return [put(root, "summarization", "gigaword", "std", 1, {"rouge1": 39.0, "rouge2": 20.0, "rougeL": math.nan})]


def probe_nan(root):
    return [
        put(
            root,
            "probe",
            "SST-2",
            "std++",
            1,
            {"accuracy": math.nan},
            probe={"protocol": "degradation", "source": "SST-2", "chain": ["SST-2"], "step": 0},
        )
    ]


@pytest.mark.parametrize(
    "make, metric",
    [(glue_f1_nan, "f1"), (xnli_language_inf, "fr"), (rouge_nan, "rougeL"), (probe_nan, "accuracy")],
    ids=["glue", "xnli", "summarization", "probe"],
)
def test_a_metric_that_is_not_a_finite_number_names_the_record(tmp_path, capsys, make, metric):
    """A NaN QQP F1 was printed as 91.00/nan."""
    bad = make(tmp_path / "recs")
    code, out, err = run([tmp_path / "recs", "--out", tmp_path / "out"], capsys)
    assert code == 1 and out == "" and not (tmp_path / "out").exists()
    assert err.count("\n") == 1 and f"{bad[0]}: metric {metric!r} is " in err and "not a finite number" in err, err


def test_a_second_metric_no_seed_has_is_the_papers_dash(tmp_path, capsys):
    """MNLI validated on matched only (no accuracy_mm in any seed) is shown as "-", as the paper does."""
    for seed in (1, 2):
        put(tmp_path / "recs", "glue", "MNLI", "r3f", seed, {"accuracy": 90.0 + seed})
    assert run([tmp_path / "recs", "--out", tmp_path / "out"], capsys)[0] == 0
    assert "| R3F (ours) | 92.00/- | 1 |" in open(tmp_path / "out" / "table2.md").read()


def test_selection_and_time_numbers_are_checked_too(tmp_path, capsys):
    put(tmp_path / "a", "xnli", "XNLI", "r3f", 1, {lang: 70.0 for lang in LANGS}, valid_accuracy=math.nan)
    assert_refused(tmp_path, capsys, [tmp_path / "a", "--out", tmp_path / "out"], "valid_accuracy is nan")
    paths = [
        put(
            tmp_path / "b",
            "glue",
            "SST-2",
            "std",
            seed,
            {"accuracy": 90.0},
            **({"time_to_best_s": 12.0} if seed == 1 else {}),
        )
        for seed in (1, 2)
    ]
    assert_refused(
        tmp_path,
        capsys,
        [tmp_path / "b", "--out", tmp_path / "out"],
        f"{paths[1]}: no time_to_best_s (Figure 1, SST-2: 1 of the 2 runs",
    )
    put(tmp_path / "c", "glue", "SST-2", "std", 1, {"accuracy": 90.0}, time_to_best_s=math.inf, checked=False)
    assert_refused(tmp_path, capsys, [tmp_path / "c", "--out", tmp_path / "out"], "time_to_best_s is inf")


# ------------------------------------------------------------------------------------------ one line, no traceback


def test_a_record_that_is_not_utf8_is_one_line(tmp_path, capsys):
    glue_records(tmp_path / "recs")
    bad = tmp_path / "recs" / "latin1" / "record.json"
    bad.parent.mkdir()
    text = '{"kind": "glue", "task": "RTE", "note": "café"}\n'
    bad.write_bytes(text.encode("latin-1"))
    code, out, err = run([tmp_path / "recs", "--out", tmp_path / "out"], capsys)
    assert code == 1 and out == "" and err.count("\n") == 1, err
    assert f"{bad}: not UTF-8 text (byte 0xe9 at offset {text.index('é')})" in err


def test_a_symlinked_out_is_refused_before_any_work(tmp_path, capsys, monkeypatch):
    glue_records(tmp_path / "recs")
    (tmp_path / "elsewhere").mkdir()
    (tmp_path / "link").symlink_to(tmp_path / "elsewhere")
    monkeypatch.setattr(report, "build", lambda *a, **k: pytest.fail("the records were read before --out"))
    for flags in ([], ["--overwrite"]):
        assert_refused(
            tmp_path,
            capsys,
            [tmp_path / "recs", "--out", tmp_path / "link", *flags],
            f"--out {tmp_path / 'link'}: is a symbolic link",
        )
    assert os.listdir(tmp_path / "elsewhere") == []


def test_a_folder_that_only_looks_like_a_report_needs_overwrite(tmp_path, capsys):
    put(tmp_path / "recs", "glue", "RTE", "std", 1, {"accuracy": 50.0})
    for name, files, summary_of in (("extra", ["summary.json"], "rxf-report"), ("other", ["summary.json"], "prep")):
        folder = tmp_path / name
        folder.mkdir()
        (folder / "summary.json").write_text(json.dumps({"generator": summary_of, "files": files}))
        if name == "extra":
            (folder / "mine.txt").write_text("keep me")
        assert_refused(
            tmp_path,
            capsys,
            [tmp_path / "recs", "--out", folder],
            "choose another folder, or pass --overwrite to replace it",
        )
        assert (folder / "summary.json").exists()
    (tmp_path / "mine").mkdir()
    (tmp_path / "mine" / "notes.txt").write_text("mine")
    assert run([tmp_path / "recs", "--out", tmp_path / "mine", "--overwrite"], capsys)[0] == 0
    assert not (tmp_path / "mine" / "notes.txt").exists() and (tmp_path / "mine" / "table2.md").exists()


def test_an_out_holding_the_records_is_refused(tmp_path, capsys):
    put(tmp_path / "runs", "glue", "RTE", "std", 1, {"accuracy": 50.0})
    assert_refused(
        tmp_path,
        capsys,
        [tmp_path / "runs" / "glue", "--out", tmp_path / "runs", "--overwrite"],
        "is or contains the input",
    )
    assert (tmp_path / "runs" / "glue").is_dir()


def test_sigterm_leaves_the_previous_report_and_nothing_else(tmp_path, capsys, monkeypatch):
    put(tmp_path / "recs", "glue", "RTE", "std", 1, {"accuracy": 50.0}, time_to_best_s=10.0)
    assert run([tmp_path / "recs", "--out", tmp_path / "out"], capsys)[0] == 0
    before = {name: (tmp_path / "out" / name).read_bytes() for name in os.listdir(tmp_path / "out")}

    def killed(*args):
        def write(path):
            open(path, "wb").write(b"half a figure")
            os.kill(os.getpid(), signal.SIGTERM)
            time.sleep(10)  # the handler raises SystemExit here
            pytest.fail("SIGTERM did not stop rxf-report")

        return write

    monkeypatch.setattr(figures, "figure2_writer", killed)
    with pytest.raises(SystemExit) as stopped:
        report.main([str(tmp_path / "recs"), "--out", str(tmp_path / "out")])
    assert stopped.value.code == 143
    assert {name: (tmp_path / "out" / name).read_bytes() for name in os.listdir(tmp_path / "out")} == before
    assert sorted(os.listdir(tmp_path)) == ["out", "recs"]


def test_every_option_has_help(capsys):
    parser = report.build_parser()
    for action in parser._actions:
        assert action.help and action.help != "==SUPPRESS==", action.option_strings or action.dest
    with pytest.raises(SystemExit) as shown:
        report.main(["--help"])
    assert shown.value.code == 0
    text = capsys.readouterr().out
    assert all(flag in text for flag in ("--out", "--overwrite", "--figure1-task", "--figure2-tasks", "--no-paper"))


def test_report_itself_imports_neither_fairseq_nor_torch():
    """Importing rxf_fairseq still pulls fairseq in through the package __init__ (issue 16); report.py adds none."""
    tree = ast.parse(open(report.__file__, encoding="utf-8").read())
    imported = {
        alias.name.split(".")[0] for node in ast.walk(tree) if isinstance(node, ast.Import) for alias in node.names
    }
    imported |= {
        node.module.split(".")[0] for node in ast.walk(tree) if isinstance(node, ast.ImportFrom) and node.module
    }
    assert not imported & {"fairseq", "fairseq_cli", "torch"}, imported


# ------------------------------------------------------------------------------------------ tables say what they show


def headings(path):
    return [line for line in open(path, encoding="utf-8") if line.startswith("#")]


def test_headings_name_the_data_the_metric_and_the_units(full_report, tmp_path, capsys):
    put(
        tmp_path / "full",
        "glue",
        "RTE",
        "r3f",
        1,
        {"accuracy": 88.0},
        command=["fairseq_cli.train", "glue-bin/RTE-bin", "--arch", "roberta_large"],
    )
    assert run([tmp_path / "full", "--out", tmp_path / "full-report"], capsys)[0] == 0
    text = open(tmp_path / "full-report" / "table2.md").read()
    assert headings(tmp_path / "full-report" / "table2.md")[0].startswith(
        "# Table 2 — GLUE dev sets (RTE), model roberta_large (the records' commands)"
    )
    assert "Metric: " in text and "in %: accuracy" in text and "Table 2 (left: max over seeds, %)" in text
    assert "Metric: test accuracy (%) per language" in open(os.path.join(full_report, "table3.md")).read()
    assert "ROUGE-1/ROUGE-2/ROUGE-L F-measure × 100" in open(os.path.join(full_report, "table4.md")).read()
    assert "linear-probe accuracy (%)" in headings(os.path.join(full_report, "probing_retention.md"))[0]
    # tiny records, or --no-paper: the headings say what the records are, never the paper's data or model
    glue_records(tmp_path / "tiny", tiny=True)
    glue_records(tmp_path / "other")
    xnli_records(tmp_path / "other")
    summarization_records(tmp_path / "other")
    for argv, report_dir in (([tmp_path / "tiny"], "tiny-report"), ([tmp_path / "other", "--no-paper"], "np")):
        assert run(argv + ["--out", tmp_path / report_dir], capsys)[0] == 0
        for name in ("table2.md", "table3.md", "table4.md"):
            if (tmp_path / report_dir / name).exists():
                heads = "".join(headings(tmp_path / report_dir / name))
                assert "GLUE" not in heads and "RoBERTa" not in heads and "XNLI" not in heads, (report_dir, heads)
                assert "the runs' own data" in heads, (report_dir, heads)
    assert (
        "Table 2 — validation sets of the runs' own data (tasks named MNLI, QQP, RTE, CoLA, SST-2, STS-B in "
        "the records; not the paper's data: --no-paper), model not named in the records"
        in headings(tmp_path / "np" / "table2.md")[0]
    )
    assert "| model | cnn_dm | gigaword |" in open(tmp_path / "np" / "table4.md").read()


def test_the_model_named_is_the_one_fairseq_built(tmp_path, capsys):
    """A tiny run's command has the config's --arch roberta_large, then the test's --arch roberta_base and sizes."""
    put(
        tmp_path / "recs",
        "glue",
        "RTE",
        "r3f",
        1,
        {"accuracy": 52.1},
        tiny=True,
        command=[
            "fairseq_cli.train",
            "data",
            "--arch",
            "roberta_large",
            "--lr",
            "1e-3",
            "--arch",
            "roberta_base",
            "--encoder-layers",
            "2",
            "--encoder-embed-dim",
            "32",
        ],
    )
    assert run([tmp_path / "recs", "--out", tmp_path / "out"], capsys)[0] == 0
    heading = headings(tmp_path / "out" / "table2.md")[0]
    assert "model roberta_base with --encoder-layers 2 --encoder-embed-dim 32 (the records' commands)" in heading
    assert "roberta_large" not in heading


def test_published_numbers_keep_the_papers_digits(tmp_path, capsys):
    """The paper's 40.90 was printed as 40.9, its 91.10 as 91.1."""
    put(tmp_path / "recs", "summarization", "cnn_dm", "std", 1, {"rouge1": 44.0, "rouge2": 21.0, "rougeL": 40.0})
    put(tmp_path / "recs", "glue", "MNLI", "r3f", 1, {"accuracy": 91.0, "accuracy_mm": 91.0})
    assert run([tmp_path / "recs", "--out", tmp_path / "out"], capsys)[0] == 0
    assert "| BART (paper) | 44.16/21.28/40.90 |" in open(tmp_path / "out" / "table4.md").read()
    assert entry(read_csv(tmp_path / "out" / "table4.csv"), metric="rougeL")["paper"] == "40.90"
    table2 = open(tmp_path / "out" / "table2.md").read()
    assert "| R3F (paper) | 91.10/91.10 |" in table2 and "| R3F (paper) | 91.1/91.3 |" in table2
    assert (
        paper.TABLE4["PEGASUS"]["reddit_tifu"]["rougeL"] == 21.6
        and str(paper.TABLE4["PEGASUS"]["reddit_tifu"]["rougeL"]) == "21.60"
    )
    assert summary(tmp_path / "out")["table4"][0]["paper"]["rougeL"] == 40.9  # a number in JSON


def test_probe_csv_calls_its_spread_sample_std(full_report):
    """A column "std" next to the method "std" was ambiguous."""
    with open(os.path.join(full_report, "probing_generalisation.csv")) as f:
        header = f.readline().strip().split(",")
    assert "sample_std" in header and "std" not in header
    assert all(
        "sample_std" in e and "std" not in e for entries in summary(full_report)["probing"].values() for e in entries
    )


def test_summary_paths_are_relative_to_the_report(full_report):
    found = summary(full_report)
    assert found["paths"] == report.PATHS_NOTE and found["inputs"] == ["../../records0"]
    paths = [p for key in ("table2", "table3", "table4") for e in found[key] for p in e["records"]]
    paths += [p for entries in found["probing"].values() for e in entries for p in e["records"]]
    assert paths and not [p for p in paths if os.path.isabs(p)]
    assert all(os.path.isfile(os.path.join(full_report, p)) for p in paths)
    assert (
        str(os.path.dirname(os.path.dirname(full_report))) not in open(os.path.join(full_report, "summary.json")).read()
    )


def test_figure1_says_which_time_it_shows(full_report):
    measure = summary(full_report)["figure1"]["measure"]
    assert measure.startswith("time_to_best_s: wall-clock seconds of training, from the first training step")
    assert "not fairseq's train_wall_s" in measure and measure in figures.FIGURE1_CAPTION


# ------------------------------------------------------------------------------------------ figures


@pytest.fixture(scope="module")
def realistic_figures(tmp_path_factory):
    """The figures of paper-like records, full and tiny, as matplotlib figures after saving (laid out)."""
    from matplotlib.figure import Figure

    figures = {}
    save = Figure.savefig

    def spy(self, path, **kwargs):
        save(self, path, **kwargs)
        figures[(tiny, os.path.basename(path))] = self

    with pytest.MonkeyPatch.context() as patch:
        patch.setattr(Figure, "savefig", spy)
        for tiny in (False, True):
            root = tmp_path_factory.mktemp(f"realistic-{tiny}")
            realistic_records(root / "runs", tiny)
            assert report.main([str(root / "runs"), "--out", str(root / "report")]) == 0
    return figures


def overlap(a, b, slack=1.0):
    return a.x0 < b.x1 - slack and b.x0 < a.x1 - slack and a.y0 < b.y1 - slack and b.y0 < a.y1 - slack


def test_figures_fit_their_canvas(realistic_figures):
    """The "not paper results" labels of Figures 1 and 2 were cut off, Figure 2's title at both ends."""
    from matplotlib.text import Text

    assert len(realistic_figures) == 10
    for (tiny, name), figure in realistic_figures.items():
        renderer = figure.canvas.get_renderer()
        box = figure.bbox
        undrawn = {
            id(label)
            for ax in figure.axes
            for axis in (ax.xaxis, ax.yaxis)
            for tick in axis.get_major_ticks()
            if not min(axis.get_view_interval()) <= tick.get_loc() <= max(axis.get_view_interval())
            for label in (tick.label1, tick.label2)
        }  # ticks beyond the axis' limits are not drawn
        texts = [t for t in figure.findobj(Text) if t.get_visible() and t.get_text().strip() and id(t) not in undrawn]
        for text in texts:
            extent = text.get_window_extent(renderer)
            assert (
                box.x0 - 1 <= extent.x0
                and extent.x1 <= box.x1 + 1
                and box.y0 - 1 <= extent.y0
                and extent.y1 <= box.y1 + 1
            ), (name, tiny, text.get_text())
        assert (selection.TINY_LABEL in figure._suptitle.get_text()) == tiny, name
        wide = [figure._suptitle, figure._supxlabel] + figure.legends  # the figure-wide texts and the legend
        for i, a in enumerate(wide):
            for b in wide[i + 1 :] + figure.axes:
                assert not overlap(a.get_window_extent(renderer), b.get_window_extent(renderer)), (name, a, b)
        for ax in figure.axes:
            ticks = sorted(
                (t.get_window_extent(renderer) for t in ax.get_xticklabels() if t.get_text()), key=lambda e: e.x0
            )
            assert not any(overlap(a, b) for a, b in zip(ticks, ticks[1:])), (
                name,
                [t.get_text() for t in ax.get_xticklabels()],
            )


def test_figure_captions_explain_the_marks(realistic_figures):
    captions = {
        name: figure._supxlabel.get_text().replace("\n", " ")
        for (tiny, name), figure in realistic_figures.items()
        if not tiny
    }
    assert "violin" in captions["figure1_walltime.png"] and "median" in captions["figure1_walltime.png"]
    assert "train_wall_s" in captions["figure1_walltime.png"]
    assert "quartile" in captions["figure2_seeds.png"] and "median" in captions["figure2_seeds.png"]
    assert "whiskers" in captions["figure2_seeds.png"]
    for name, _ in figures.PROBE_FIGURES.values():
        assert "error bar: ± one sample standard deviation (n−1)" in captions[name], name


def test_probe_figures_show_half_point_differences(realistic_figures):
    """Figure 3's y-axis from 0 hid half-point differences; its legend covered a bar."""
    for (tiny, name), figure in realistic_figures.items():
        if not name.startswith(("figure3", "figure4", "figure5")):
            continue
        for ax in figure.axes:
            means = [y for line in ax.get_lines() for y in line.get_ydata()]
            low, high = ax.get_ylim()
            assert low > min(means) - 5 and high < max(means) + 5 and high - low < 20, (name, low, high)
        assert figure.legends and not ax.get_legend()  # one legend, outside every panel (checked above)
