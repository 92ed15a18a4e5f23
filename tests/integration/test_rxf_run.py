"""rxf-run's runs for real (tiny RoBERTa, forked as rxf-run forks them): a run stopped by SIGTERM resumes and records the best across its attempts, a fork computes what a fresh interpreter computes, an unreadable checkpoint is one line, and stream closes what it opens."""

import json
import os
import re
import signal
import sys
import time
import warnings

import psutil
import torch

from rxf_repro import attempts, execution, process, runs
from tests.helpers import forked, json_records, rxf_run_argv
from tests.pipelines import running


def rxf_run(glue_bin, checkpoint, save_root, *extra, updates=12):
    """``rxf-run glue RTE r3f ...`` (its ``main``) in a fork of this interpreter, as the tests run fairseq
    (``tests.helpers.forked``): rxf-run's own work and fairseq's in its own forked child, without a fresh Python
    each. (exit status, stdout and stderr together)."""
    execution.preload("fairseq_cli.train")  # here once, not in every rxf-run fork
    proc = forked(runs.main, (rxf_run_argv(glue_bin, checkpoint, save_root, *extra, updates=updates),), check=False)
    return proc.returncode, proc.stdout


def run_dir(save_root):
    return save_root / "glue" / "rte" / "r3f" / "noise_type=uniform,r3f_lambda=1.0" / "seed1"


def best_in_log(text):
    """The validation behind checkpoint_best.pt by fairseq's rule, read from every attempt of a train.log: the
    highest accuracy, a tie going to the later one (fairseq overwrites checkpoint_best.pt on a tie)."""
    validations = json_records(text, "valid")
    return max(validations, key=lambda v: (float(v["valid_accuracy"]), int(v["valid_num_updates"])))


def test_a_run_stopped_by_sigterm_resumes_and_records_the_best_across_its_attempts(
    glue_bin, pretrained_roberta, tmp_path
):
    """rxf-run stopped by SIGTERM between two saves stops fairseq-train with it and records nothing; run again, it
    resumes, keeps both attempts in its log and records the best validation across them, as the log and
    checkpoint_best.pt say. That the resumed fairseq run computes what an uninterrupted one computes is fairseq's,
    proven bit for bit by test_fairseq_train.py::test_resume_after_interruption_equals_uninterrupted_run; how the record
    picks the best across attempts, by the fake logs above. Then a kill after the last save (the record deleted):
    the next run records the finished run from its log and checkpoints instead of training an update more."""
    updates = 15  # the kill lands after the save at update 3: 12 updates, 4 validations and 4 saves before the end
    folder = run_dir(tmp_path / "runs")
    log = folder / "train.log"
    execution.preload("fairseq_cli.train")
    with open(tmp_path / "attempt1.out", "w") as out:
        argv = rxf_run_argv(glue_bin, pretrained_roberta, tmp_path / "runs", updates=updates)
        child = process.ForkedChild(runs.main, (argv,), output_fd=out.fileno())
    try:
        deadline = time.time() + 120
        while (
            time.time() < deadline
            and child.poll() is None
            and not (log.exists() and "(epoch 1 @ 3 updates" in log.read_text())  # fairseq's line after the save
        ):
            time.sleep(0.05)
        below = [p.pid for p in psutil.Process(child.pid).children(recursive=True)]
        assert child.poll() is None, "the run ended before it could be interrupted"
        assert below, "no fairseq-train below rxf-run"
        os.kill(child.pid, signal.SIGTERM)
        assert child.wait(timeout=60) == 143, (tmp_path / "attempt1.out").read_text()[-2000:]
    finally:
        process.stop_child(child)
    assert not (folder / "record.json").exists()
    deadline = time.time() + 5  # a helper that exits once its pipe closes (multiprocessing's) may take a moment
    while time.time() < deadline and any(map(running, below)):
        time.sleep(0.1)
    assert [pid for pid in below if running(pid)] == [], "fairseq-train outlived rxf-run"

    code, out = rxf_run(glue_bin, pretrained_roberta, tmp_path / "runs", updates=updates)
    assert code == 0, out[-3000:]
    assert f"log: {log} (resuming from" in out and "validation at update" in out  # progress, and where the log is
    assert "rxf-run: 1 run(s) trained, 0 done already" in out
    record = json.load(open(folder / "record.json"))
    assert [a["resumed"] for a in record["attempts"]] == [False, True] and record["attempts"][0]["exit"] is None
    assert 0 < record["time_to_best_s"] <= record["wall_time_s"]
    text = log.read_text()
    assert text.count(attempts.HEADER) == 3  # two headers and the second attempt's footer: both logs kept
    first, second = text.split(f"{attempts.HEADER}2 ", 1)
    assert '"valid_num_updates": "3"' in first  # attempt 1's validations are there
    saved_at = re.findall(r"Saved checkpoint \S+ \(epoch 1 @ (\d+) updates", first)[-1]  # 3, unless a fast machine
    assert re.search(rf"Loaded checkpoint \S+checkpoint_last.pt \(epoch 1 @ {saved_at} updates\)", second)
    best = best_in_log(text)
    saved = torch.load(str(folder / "checkpoint_best.pt"), map_location="cpu")["optimizer_history"][-1]
    assert record["best_update"] == int(best["valid_num_updates"]) == saved["num_updates"]
    assert record["metrics"]["accuracy"] == float(best["valid_accuracy"])

    os.remove(folder / "record.json")  # as a kill right after the last checkpoint leaves it
    code, out = rxf_run(glue_bin, pretrained_roberta, tmp_path / "runs", updates=updates)
    assert code == 0, out[-3000:]
    assert "training had finished" in out and log.read_text() == text
    again = json.load(open(folder / "record.json"))
    for key in ("best_update", "metrics", "attempts", "valid_curve"):
        assert again[key] == record[key], key


def logged_numbers(log_path):
    """Every train/valid json line's numbers except the timings: what a run computed, update by update."""
    timing = ("wall", "ups", "wps", "gb_free", "train_wall", "valid_wall")
    text = open(log_path, encoding="utf-8").read()
    return [
        (kind, {k: v for k, v in record.items() if not k.endswith(timing)})
        for kind in ("train_inner", "train", "valid")
        for record in json_records(text, kind)
    ]


def test_a_run_in_a_fork_computes_what_a_fresh_interpreter_computes(glue_bin, pretrained_roberta, tmp_path):
    """rxf-run runs fairseq-train in a fork of itself (fairseq already imported); --fresh-interpreter starts
    ``python -m fairseq_cli.train`` as the dry run prints it. The same run either way, update by update: the proof
    behind every fork of fairseq in rxf-run and in these tests (the one fresh Python of a fairseq run they keep)."""
    found = {}
    for mode, extra in (("fork", []), ("fresh", ["--fresh-interpreter"])):
        code, out = rxf_run(glue_bin, pretrained_roberta, tmp_path / mode, *extra, updates=6)
        assert code == 0, out[-3000:]
        found[mode] = json.load(open(run_dir(tmp_path / mode) / "record.json"))
        found[mode]["numbers"] = logged_numbers(run_dir(tmp_path / mode) / "train.log")
    assert len(found["fork"]["numbers"]) == 6 + 2 + 1  # train_inner every update, valid every 3, the epoch's train
    for key in ("numbers", "metrics", "best_update"):
        assert found["fork"][key] == found["fresh"][key]
    same = [a.replace(str(tmp_path / "fork"), str(tmp_path / "fresh")) for a in found["fork"]["command"]]
    assert same == found["fresh"]["command"]


def test_an_unreadable_checkpoint_last_says_what_to_do_and_force_starts_afresh(glue_bin, pretrained_roberta, tmp_path):
    folder = run_dir(tmp_path / "runs")
    folder.mkdir(parents=True)
    real = open(pretrained_roberta, "rb").read()
    for broken in (real[: len(real) // 2], os.urandom(4096)):  # truncated by a kill during saving; garbage
        (folder / "checkpoint_last.pt").write_bytes(broken)
        code, out = rxf_run(glue_bin, pretrained_roberta, tmp_path / "runs")
        assert code == 1 and "Traceback" not in out, out[-2000:]
        (line,) = [text for text in out.splitlines() if text.startswith("rxf-run: error:")]
        assert "checkpoint_last.pt: cannot be read as a fairseq checkpoint" in line
        assert "Delete it" in line and "--force" in line
    code, out = rxf_run(glue_bin, pretrained_roberta, tmp_path / "runs", "--force", updates=3)
    assert code == 0, out[-3000:]
    record = json.load(open(folder / "record.json"))
    assert [a["resumed"] for a in record["attempts"]] == [False]


def test_stream_closes_the_log_it_reads_and_the_childs_pipe(tmp_path):
    """A second attempt reads the log the first wrote, and reads the child's output through a pipe: both are closed
    (CPython frees an unclosed file at once, so one left open warns deterministically, here)."""
    log_path = str(tmp_path / "train.log")
    execution.stream([sys.executable, "-c", "print('first')"], log_path)
    with warnings.catch_warnings(record=True) as caught:
        warnings.simplefilter("always", ResourceWarning)
        code, attempt = execution.stream([sys.executable, "-c", "print('second')"], log_path, resumed=True)
    assert code == 0 and attempt.number == 2
    assert [str(w.message) for w in caught if issubclass(w.category, ResourceWarning)] == []
