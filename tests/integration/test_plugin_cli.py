"""The plugin's errors as fairseq-train and fairseq-hydra-train users see them: one line naming the flag, no traceback."""

import math
import os
import subprocess
import sys

import pytest

from tests.helpers import (
    HYDRA_TINY_ROBERTA,
    REPO,
    USER_DIR,
    arch_without_heads_args,
    classification_args,
    fairseq_cli,
    json_records,
    masked_lm_args,
    seq2seq_args,
)


@pytest.mark.parametrize("case", ["r3f on masked_lm", "smart on masked_lm", "r4f task on lstm_lm", "eps inf"])
def test_fairseq_train_reports_unusable_setups_in_one_line(toy_data, case, tmp_path):
    """Real fairseq-train: one line ``fairseq-train: error: FLAG ...``, exit 1, no traceback (fairseq's own
    path was ``AttributeError: 'MaskedLMTask' object has no attribute 'label_dictionary'``)."""
    argv, expected = {
        "r3f on masked_lm": (
            masked_lm_args(toy_data, "sentence_prediction_r3f"),
            "fairseq-train: error: --criterion sentence_prediction_r3f trains the classification "
            "head --classification-head-name 'sentence_classification_head', but --task masked_lm",
        ),
        "smart on masked_lm": (
            masked_lm_args(toy_data, "sentence_prediction_smart"),
            "fairseq-train: error: --criterion sentence_prediction_smart trains the classification "
            "head --classification-head-name",
        ),
        "r4f task on lstm_lm": (
            arch_without_heads_args(toy_data, "sentence_prediction_r4f"),
            "fairseq-train: error: --task sentence_prediction_r4f needs the classification head "
            "--classification-head-name 'sentence_classification_head', but --arch lstm_lm",
        ),
        "eps inf": (
            classification_args(toy_data["cls"], ["--eps", "inf", "--max-update", "2", "--no-save"]),
            "fairseq-train: error: --eps must be >= 0 and finite",
        ),
    }[case]
    proc = fairseq_cli("train", argv, cwd=tmp_path, check=False)  # --no-save still makes ./checkpoints
    assert proc.returncode == 1, proc.stdout[-3000:]
    assert proc.stdout.rstrip().splitlines()[-1].startswith(expected), proc.stdout[-3000:]
    assert "Traceback" not in proc.stdout and "AttributeError" not in proc.stdout


def test_fairseq_hydra_train_reports_a_bad_option_without_a_traceback(toy_data, tmp_path):
    tiny = HYDRA_TINY_ROBERTA
    proc = subprocess.run(
        [
            sys.executable,
            "-m",
            "fairseq_cli.hydra_train",
            "--config-dir",
            os.path.join(REPO, "configs", "glue"),
            "--config-name",
            "rte",
            "method=r3f",
            f"task.data={toy_data['cls']}",
            "checkpoint.restore_file=none",
            "common.cpu=true",
            "common.fp16=false",
            f"common.user_dir={USER_DIR}",
            "checkpoint.no_save=true",
            "criterion.eps=inf",
            *tiny,
        ],
        cwd=tmp_path,
        capture_output=True,
        text=True,
        env={**os.environ, "HYDRA_FULL_ERROR": ""},
    )
    assert proc.returncode == 1, (proc.stdout + proc.stderr)[-3000:]
    assert "fairseq-hydra-train: error: --eps must be >= 0 and finite" in proc.stderr
    assert "Traceback" not in proc.stdout + proc.stderr


LN2 = math.log(2)


def decimals(text: str) -> int:
    return len(text.split(".", 1)[1]) if "." in text and "e" not in text else 0


def test_fairseq_train_json_log_gives_the_total_the_task_loss_and_the_kl(toy_data, tmp_path):
    out = fairseq_cli(
        "train",
        classification_args(
            toy_data["cls"],
            [
                "--eps",
                "0.1",
                "--r3f-lambda",
                "2",
                "--max-update",
                "4",
                "--no-save",
                "--log-format",
                "json",
                "--log-interval",
                "2",
            ],
        ),
        cwd=str(tmp_path),  # fairseq makes ./checkpoints, --no-save or not
    ).stdout
    records = json_records(out, "train_inner") + json_records(out, "train")
    assert len(records) == 3
    for record in records:
        prefix = "train_" if "train_loss" in record else ""
        loss, task_loss, kl = (record[prefix + key] for key in ("loss", "task_loss", "symm_kl"))
        assert decimals(loss) <= 3 and decimals(task_loss) <= 3
        assert float(kl) > 0 and float(kl) == float(f"{float(kl):.3g}")  # 3 significant digits
        # loss and task_loss in bits (3 decimals each), symm_kl in nats
        assert float(loss) == pytest.approx(float(task_loss) + 2 * float(kl) / LN2, abs=1.1e-3)
        assert float(task_loss) < float(loss)
    (valid,) = json_records(out, "valid")
    assert valid["valid_task_loss"] == valid["valid_loss"] and "valid_symm_kl" not in valid


def test_fairseq_train_warns_once_about_the_seq2seq_default_lambda(toy_data, tmp_path):
    out = fairseq_cli(
        "train",
        seq2seq_args(
            toy_data["s2s"], ["--max-update", "2", "--no-save", "--log-format", "json", "--log-interval", "1"]
        ),
        cwd=str(tmp_path),  # fairseq makes ./checkpoints, --no-save or not
    ).stdout
    assert out.count("outside the paper's grid") == 1
    (line,) = [line for line in out.splitlines() if "outside the paper's grid" in line]
    assert "| WARNING |" in line and "--r3f-lambda 1 (the default)" in line
    assert "summarization, Table 8: 0.001, 0.01, 0.1" in line
    last = json_records(out, "train")[-1]
    assert {"train_loss", "train_task_loss", "train_nll_loss", "train_symm_kl"} <= last.keys()
