"""examples/hf_glue.py: a GLUE-layout TSV fine-tuned through transformers' Trainer with R4F and SMART on the real
MiniLM, run as a user runs it; bad input is one line naming the file, exit 1, nothing written."""

import json
import os
import subprocess
import sys

import pytest

pytest.importorskip("transformers")

from tests.helpers import MINILM, REPO  # noqa: E402

SCRIPT = os.path.join(REPO, "examples", "hf_glue.py")


def write_sst2(folder, rows=24):
    folder.mkdir(parents=True, exist_ok=True)
    lines = ["sentence\tlabel"]
    for i in range(rows):
        lines += [f"a dog runs past house {i}\t1", f"the cat sleeps in room {i}\t0"]
    for name in ("train.tsv", "dev.tsv"):
        (folder / name).write_text("\n".join(lines) + "\n", encoding="utf-8")
    return folder


def run_example(tmp_path, *extra, train=True):
    argv = [
        sys.executable,
        SCRIPT,
        "--model_name_or_path",
        MINILM,
        "--task_name",
        "sst2",  # run_glue.py's spelling of SST-2
        "--output_dir",
        str(tmp_path / "out"),
        *(["--do_train"] if train else []),
        "--do_eval",
        "--max_steps",
        "4",
        "--per_device_train_batch_size",
        "8",
        "--learning_rate",
        "1e-4",
        "--logging_steps",
        "1",
        "--save_strategy",
        "no",
        "--use_cpu",
        "--report_to",
        "none",
        "--disable_tqdm",
        "true",
        *extra,
    ]
    return subprocess.run(argv, capture_output=True, text=True, timeout=600, cwd=str(tmp_path))


def test_r4f_fine_tunes_saves_and_reloads_with_the_same_predictions(tmp_path):
    import torch
    from transformers import AutoModelForSequenceClassification, AutoTokenizer

    from rxf.hf import load_r4f

    proc = run_example(tmp_path, "--data_dir", str(write_sst2(tmp_path / "SST-2")), "--method", "r4f")
    assert proc.returncode == 0, proc.stderr[-3000:]
    out = tmp_path / "out"
    results = json.load(open(out / "eval_results.json"))
    assert results["eval_samples"] == 48 and 0 <= results["eval_accuracy"] <= 1 and "eval_mcc" in results
    history = json.load(open(out / "trainer_state.json"))["log_history"]
    assert sum("symm_kl" in entry for entry in history) == 4  # one logged term per update
    model = load_r4f(AutoModelForSequenceClassification, str(out)).eval()
    assert model.config.rxf_r4f_layers == ["classifier", "bert.pooler.dense"]
    inputs = AutoTokenizer.from_pretrained(str(out))(["a dog runs past house 3"], return_tensors="pt")
    with torch.no_grad():
        again = load_r4f(AutoModelForSequenceClassification, str(out)).eval()
        assert torch.equal(model(**inputs).logits, again(**inputs).logits)
    # evaluation only, of the saved model: its R4F head and its label ids, the same accuracy
    argv = ["--model_name_or_path", str(out), "--output_dir", str(tmp_path / "eval")]
    proc = run_example(tmp_path, "--data_dir", str(tmp_path / "SST-2"), "--method", "std", *argv, train=False)
    assert proc.returncode == 0, proc.stderr[-3000:]
    again = json.load(open(tmp_path / "eval" / "eval_results.json"))
    assert again["eval_accuracy"] == results["eval_accuracy"]
    assert again["eval_loss"] == pytest.approx(results["eval_loss"], rel=1e-5)


def test_sts_b_is_regression_with_the_squared_change(tmp_path):
    data = tmp_path / "STS-B"
    data.mkdir()
    header = "index\tgenre\tfilename\tyear\told_index\tsource1\tsource2\tsentence1\tsentence2\tscore"
    rows = [header] + [
        f"{i}\tmain\tf\t2012\t{i}\ts\ts\ta man plays a guitar {i}\ta man plays music {i}\t{i % 6 * 0.9:.1f}"
        for i in range(16)
    ]
    for name in ("train.tsv", "dev.tsv"):
        (data / name).write_text("\n".join(rows) + "\n", encoding="utf-8")
    proc = run_example(tmp_path, "--data_dir", str(data), "--method", "r3f", "--task_name", "STS-B")
    assert proc.returncode == 0, proc.stderr[-3000:]
    results = json.load(open(tmp_path / "out" / "eval_results.json"))
    assert -1 <= results["eval_pearson"] <= 1
    history = json.load(open(tmp_path / "out" / "trainer_state.json"))["log_history"]
    assert all(entry["noise_sq_err"] >= 0 for entry in history if "loss" in entry)


def test_smart_runs_with_its_options_from_the_command_line(tmp_path):
    data = write_sst2(tmp_path / "SST-2", rows=8)
    proc = run_example(
        tmp_path, "--data_dir", str(data), "--method", "smart", "--smart_steps", "2", "--smart_mu", "0.5"
    )
    assert proc.returncode == 0, proc.stderr[-3000:]
    history = json.load(open(tmp_path / "out" / "trainer_state.json"))["log_history"]
    bregman = [entry["smart_bregman"] for entry in history if "smart_bregman" in entry]
    # the teacher starts at theta_0 (only dropout, which its pass has not, separates them) and lags more and more
    assert len(bregman) == 4 and bregman == sorted(bregman) and bregman[-1] > 10 * bregman[0]


def test_a_bad_row_is_one_line_naming_the_file_and_nothing_is_written(tmp_path):
    data = write_sst2(tmp_path / "SST-2", rows=2)
    (data / "train.tsv").write_text("sentence\tlabel\na fine sentence\t7\n", encoding="utf-8")
    proc = run_example(tmp_path, "--data_dir", str(data), "--method", "r3f")
    assert proc.returncode == 1
    assert proc.stderr.strip().splitlines()[-1].startswith(f"hf_glue.py: {data / 'train.tsv'}:2: label '7'")
    assert not (tmp_path / "out").exists()
    proc = run_example(tmp_path, "--data_dir", str(data), "--method", "r5f")
    assert proc.returncode == 1 and "--method 'r5f': expected one of std, r3f, r4f, fast-r3f, smart" in proc.stderr
