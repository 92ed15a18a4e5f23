"""run_scripts/*.sh for real, one tiny run each: GLUE classification and regression, XNLI zero-shot, summarisation train -> generate -> score; each writes its record."""

import os
import shutil
import subprocess

import pytest

from rxf_repro import runs
from tests.helpers import (
    REPO,
    RUN_SCRIPTS_DIR,
    SUMMARIZATION_TRANSLATION,
    TINY_BART,
    TINY_ROBERTA,
    fairseq_cli,
    forked,
    script_rxf_run_argv,
)


def tiny_run(script, *args, env):
    proc = subprocess.run(
        ["bash", os.path.join(RUN_SCRIPTS_DIR, script), *args],
        env=dict(os.environ, CPU="1", **env),
        capture_output=True,
        text=True,
    )
    assert proc.returncode == 0, (proc.stdout + proc.stderr)[-5000:]
    return proc


def read_records(root):
    from rxf_repro.records import read_records

    return [dict(record.to_dict(), path=record.path) for record in read_records([str(root)])]


TINY_GLUE = [
    "--tiny",
    "--set",
    "optimization.max_update=6",
    "--set",
    "lr_scheduler.warmup_updates=1",
    "--set",
    "lr_scheduler.total_num_update=6",
    "--set",
    "optimization.lr=[0.001]",
    "--",
    *TINY_ROBERTA,
    "--batch-size",
    "16",
    "--log-interval",
    "1",
]


def test_glue_classification_and_regression_end_to_end(toy_data, pretrained_roberta, tmp_path):
    glue_bin = tmp_path / "glue-bin"
    shutil.copytree(toy_data["cls"], glue_bin / "RTE-bin")
    # STS-B: the same sentences with regression targets (text labels, as preprocess/glue.sh writes them)
    shutil.copytree(os.path.join(toy_data["cls"], "input0"), glue_bin / "STS-B-bin" / "input0")
    (glue_bin / "STS-B-bin" / "label").mkdir()
    raw = os.path.join(toy_data["root"], "raw")
    for split in ("train", "valid"):
        labels = open(os.path.join(raw, f"{split}.label")).read().split()
        (glue_bin / "STS-B-bin" / "label" / f"{split}.label").write_text(
            "".join(f"{0.2 + 0.6 * int(v)}\n" for v in labels)
        )
    for sub in ("input0", "label"):  # a second validation split, as MNLI's dev_mismatched (valid1)
        for ext in ("bin", "idx"):
            shutil.copy(glue_bin / "RTE-bin" / sub / f"valid.{ext}", glue_bin / "RTE-bin" / sub / f"valid1.{ext}")
    env = {"GLUE_BIN": str(glue_bin), "ROBERTA": pretrained_roberta, "SAVE_ROOT": str(tmp_path / "runs")}
    # the script's one real run; STS-B and the rerun: its argv for rxf-run, run in a fork of this interpreter
    tiny_run("glue.sh", "RTE", "r3f", "1", "--set", "dataset.valid_subset='valid,valid1'", *TINY_GLUE, env=env)
    forked(runs.main, (script_rxf_run_argv("glue.sh", "STS-B", "r4f", "1", *TINY_GLUE, env=dict(env, CPU="1")),))
    records = {(r["task"], r["seed"]): r for r in read_records(tmp_path / "runs")}
    assert set(records) == {("RTE", 1), ("STS-B", 1)}
    rte = records[("RTE", 1)]
    assert rte["kind"] == "glue" and rte["method"] == "r3f" and rte["tiny"] is True
    assert rte["hparams"] == {"noise_type": "uniform", "r3f_lambda": 1.0}
    assert 0 <= rte["metrics"]["accuracy"] <= 100 and rte["best_update"] <= 6
    assert rte["metrics"]["accuracy_mm"] == rte["metrics"]["accuracy"]  # valid1 is a copy of valid
    assert 0 < rte["time_to_best_s"] <= rte["wall_time_s"]
    stsb = records[("STS-B", 1)]
    assert {"pearson", "spearman"} <= set(stsb["metrics"]) and "accuracy" not in stsb["metrics"]
    # the best checkpoint is the one the record describes
    log = open(os.path.join(os.path.dirname(rte["path"]), "train.log")).read()
    assert f'"valid_num_updates": "{rte["best_update"]}"' in log
    # a finished run is not run again
    again = forked(runs.main, (script_rxf_run_argv("glue.sh", "RTE", "r3f", "1", *TINY_GLUE, env=dict(env, CPU="1")),))
    assert "done already" in again.stdout


def test_xnli_zero_shot_end_to_end(toy_data, pretrained_roberta, tmp_path):
    data = tmp_path / "xnli-bin"
    shutil.copytree(toy_data["cls"], data)
    for sub in ("input0", "label"):  # two "languages", loadable as their own splits
        for lang in ("en", "fr"):
            for ext in ("bin", "idx"):
                shutil.copy(data / sub / f"valid.{ext}", data / sub / f"test_{lang}.{ext}")
    env = {"XNLI_BIN": str(data), "XLMR": pretrained_roberta, "SAVE_ROOT": str(tmp_path / "runs")}
    tiny_run("xnli.sh", "r4f", "1", "--languages", "en", "fr", *TINY_GLUE, env=env)
    (record,) = read_records(tmp_path / "runs")
    assert record["kind"] == "xnli" and record["method"] == "r4f" and set(record["metrics"]) == {"en", "fr"}
    # both "languages" are the valid split, which the best checkpoint was chosen on
    assert record["metrics"]["en"] == record["metrics"]["fr"] == pytest.approx(record["valid_accuracy"], abs=0.051)


def test_summarization_train_generate_score_end_to_end(tiny_bpe, tmp_path):
    """preprocess/summarization.sh -> a tiny BART "pretrained" checkpoint -> run_scripts/summarization.sh:
    R3F fine-tuning, fairseq-generate with the config's decoding settings, rxf-rouge, one record."""
    raw = tmp_path / "raw"
    raw.mkdir()
    articles = [
        "the cat sat on the mat and then the cat slept .",
        "rain fell in the hills all night , then it stopped .",
        "a man bought bread and milk at the shop .",
        "the team won the game in the last minute .",
    ]
    summaries = ["the cat slept .", "it rained all night .", "a man went shopping .", "the team won ."]
    for split, n in (("train", 4), ("val", 2), ("test", 3)):
        (raw / f"{split}.source").write_text("".join(articles[i % 4] + "\n" for i in range(n)))
        (raw / f"{split}.target").write_text("".join(summaries[i % 4] + "\n" for i in range(n)))
    summ_bin = tmp_path / "summ-bin"
    proc = subprocess.run(
        [
            "bash",
            os.path.join(REPO, "preprocess", "summarization.sh"),
            "cnn_dm",
            str(raw),
            str(summ_bin / "cnn_dm-bin"),
            "--encoder-json",
            tiny_bpe["encoder"],
            "--vocab-bpe",
            tiny_bpe["vocab"],
            "--dict",
            tiny_bpe["dict"],
        ],
        capture_output=True,
        text=True,
    )
    assert proc.returncode == 0, proc.stderr[-3000:]
    bart = ["--share-all-embeddings", "--share-decoder-input-output-embed", "--layernorm-embedding", *TINY_BART]
    fairseq_cli(
        "train",
        [
            str(summ_bin / "cnn_dm-bin"),
            *SUMMARIZATION_TRANSLATION,
            *bart,
            "--optimizer",
            "adam",
            "--lr",
            "1e-3",
            "--batch-size",
            "4",
            "--required-batch-size-multiple",
            "1",
            "--max-update",
            "2",
            "--save-dir",
            str(tmp_path / "bart"),
            "--no-epoch-checkpoints",
            "--cpu",
            "--seed",
            "1",
        ],
    )
    bpe_dir = os.path.dirname(tiny_bpe["encoder"])
    env = {
        "SUMM_BIN": str(summ_bin),
        "BART": str(tmp_path / "bart" / "checkpoint_last.pt"),
        "BPE_DIR": bpe_dir,
        "SAVE_ROOT": str(tmp_path / "runs"),
    }
    tiny_run(
        "summarization.sh",
        "cnn_dm",
        "r3f",
        "--tiny",
        "--rouge-backend",
        "python",
        "--gen-batch-size",
        "4",
        "--set",
        "optimization.max_update=4",
        "--set",
        "lr_scheduler.warmup_updates=1",
        "--set",
        "lr_scheduler.total_num_update=4",
        "--set",
        "optimization.update_freq=[1]",
        "--set",
        "generation.min_len=1",
        "--set",
        "generation.max_len_b=12",
        "--set",
        "generation.beam=2",
        "--",
        *bart,
        "--lr",
        "1e-3",
        env=env,
    )
    (record,) = read_records(tmp_path / "runs")
    assert record["kind"] == "summarization" and record["task"] == "cnn_dm" and record["method"] == "r3f"
    assert set(record["metrics"]) == {"rouge1", "rouge2", "rougeL"}
    assert all(0 <= v <= 100 for v in record["metrics"].values())
    run_dir = os.path.dirname(record["path"])
    refs = open(os.path.join(run_dir, "test.ref")).read().splitlines()
    assert refs == [summaries[i % 4] for i in range(3)]  # the decoded binaries give back the references
    assert len(open(os.path.join(run_dir, "test.hypo")).read().splitlines()) == 3
    # the generation used the config's decoding settings (with the overrides) and the references came first
    assert "--no-repeat-ngram-size 3" in " ".join(record["generate"]) and record["rouge"][1].endswith("test.ref")
