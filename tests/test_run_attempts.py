"""rxf-run after interruptions: every attempt's log kept, records true across attempts, unreadable checkpoints,
--force, and the option checks that run before anything trains."""

import contextlib
import io
import json
import os
import shutil
import signal
import subprocess
import sys
import time

import pytest

from rxf_repro import attempts, runs
from tests.helpers import REPO, TINY_ROBERTA

pytestmark = pytest.mark.slow  # fairseq or a pipeline in subprocesses: make test-fast skips it


def fake_log(*attempts_lines, started=1000.0):
    """A train.log of several attempts: each a list of (seconds, fairseq json tag, record) plus an exit code."""
    text = []
    for number, (lines, code) in enumerate(attempts_lines, start=1):
        begin = started + 100 * (number - 1)
        text.append(attempts.header(number, number > 1, begin, "fairseq-train ..."))
        for seconds, tag, record in lines:
            stamp = time.strftime("%Y-%m-%d %H:%M:%S", time.localtime(begin + seconds))
            text.append(f"{stamp} | INFO | {tag} | {json.dumps(record)}\n")
        if code is not None:
            text.append(attempts.footer(number, code, max(s for s, _, _ in lines) + 1))
    return "".join(text)


def valid(update, accuracy):
    return {"valid_accuracy": str(accuracy), "valid_num_updates": str(update), "valid_loss": "0.7"}


def test_the_best_checkpoint_of_an_earlier_attempt_is_the_records():
    """The issue's case: attempt 1 reached 51.5 at update 15, then was killed; the resumed attempt never beat it."""
    begin = "begin training epoch 1"
    log = fake_log(
        ([(4, "fairseq.trainer", begin), (10, "valid", valid(10, 50.0)), (20, "valid", valid(15, 51.5))], None),
        ([(25, "fairseq.trainer", begin), (30, "valid", valid(30, 50.2)), (40, "valid", valid(40, 50.9))], 0),
    )
    found = attempts.read_attempts(log)
    assert [a.resumed for a in found] == [False, True] and found[0].exit_code is None and found[1].exit_code == 0
    best = attempts.best_validation(found, "accuracy", True)
    assert best.update == 15 and best.attempt == 0
    times = attempts.timings(found, best)
    # attempt 1 was killed: its duration is its last time-stamped line (20 s); it began training 4 s in and the
    # best came 20 s in: 16 s of training to the best, and start-up 4 s + 25 s (the resumed attempt's)
    assert times["time_to_best_s"] == pytest.approx(16, abs=1)
    assert times["startup_s"] == pytest.approx(4 + 25, abs=1)
    assert times["wall_time_s"] == pytest.approx(20 + 41, abs=1)
    assert times["train_wall_s"] == pytest.approx(16 + 15, abs=1)
    # a best in the second attempt: all of the first attempt's training, then the second's up to it
    later = attempts.Best(1, dict(attempts.json_log(found[1].lines, "valid")[1]))
    assert attempts.timings(found, later)["time_to_best_s"] == pytest.approx(16 + 15, abs=1)


def test_ties_across_attempts_go_to_the_last_as_fairseq_overwrites_checkpoint_best():
    log = fake_log(([(5, "valid", valid(5, 60.0))], None), ([(5, "valid", valid(10, 60.0))], 0))
    assert attempts.best_validation(attempts.read_attempts(log), "accuracy", True).update == 10


def test_the_update_stored_in_checkpoint_best_wins_over_the_log():
    log = fake_log(([(5, "valid", valid(5, 70.0)), (9, "valid", valid(9, 60.0))], 0))
    assert attempts.best_validation(attempts.read_attempts(log), "accuracy", True, checkpoint_update=9).update == 9


def test_a_fresh_start_forgets_the_attempts_before_it():
    log = (
        fake_log(([(5, "valid", valid(5, 90.0))], None))
        + attempts.header(2, False, 2000.0, "again")
        + "2026-01-01 00:00:00 | INFO | valid | "
        + json.dumps(valid(3, 40.0))
        + "\n"
    )
    found = attempts.read_attempts(log)
    assert len(found) == 1 and attempts.best_validation(found, "accuracy", True).update == 3


def test_no_validation_is_one_line_naming_the_log():
    with pytest.raises(attempts.AttemptError, match="runs/x/train.log: no validation with valid_accuracy"):
        attempts.best_validation(
            attempts.read_attempts(fake_log(([(1, "train", {"loss": "1"})], 0))), "accuracy", True, "runs/x/train.log"
        )


# ------------------------------------------------------------------------------------ real rxf-run runs


def tiny(updates):
    """rxf-run's options for a tiny RTE run of ``updates`` updates, validated and saved every 3."""
    sets = [f"optimization.max_update={updates}", "lr_scheduler.warmup_updates=1"]
    sets += [f"lr_scheduler.total_num_update={updates}", "optimization.lr=[0.001]"]
    sets += ["checkpoint.save_interval_updates=3", "common.log_interval=1"]
    options = ["--tiny", "--cpu", "--seeds", "1", "--progress-every", "0.5"]
    return (
        options
        + [a for o in sets for a in ("--set", o)]
        + ["--", *TINY_ROBERTA, "--batch-size", "16", "--dropout", "0.1"]
    )


def rxf_run(glue_bin, checkpoint, save_root, *extra, wait=True, updates=12):
    command = [
        sys.executable,
        "-m",
        "rxf_repro.runs",
        "glue",
        "RTE",
        "r3f",
        "--data",
        str(glue_bin),
        "--checkpoint",
        checkpoint,
        "--save-root",
        str(save_root),
        *extra,
        *tiny(updates),
    ]
    proc = subprocess.Popen(command, stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True, cwd=REPO)
    if not wait:
        return proc
    out, err = proc.communicate(timeout=300)
    return proc.returncode, out, err


def run_dir(save_root):
    return save_root / "glue" / "rte" / "r3f" / "noise_type=uniform,r3f_lambda=1.0" / "seed1"


@pytest.fixture
def glue_bin(toy_data, tmp_path):
    shutil.copytree(toy_data["cls"], tmp_path / "glue-bin" / "RTE-bin")
    return tmp_path / "glue-bin"


def test_a_run_killed_and_resumed_records_what_an_uninterrupted_run_records(glue_bin, pretrained_roberta, tmp_path):
    # 30 updates: the kill below must land between the save at update 6 and the end of training
    code, _, err = rxf_run(glue_bin, pretrained_roberta, tmp_path / "whole", updates=30)
    assert code == 0, err[-3000:]
    whole = json.load(open(run_dir(tmp_path / "whole") / "record.json"))
    # progress while it trains, and where the log is
    assert f"log: {run_dir(tmp_path / 'whole') / 'train.log'}" in err and "validation at update" in err
    assert "rxf-run: 1 run(s) trained, 0 done already" in err

    proc = rxf_run(glue_bin, pretrained_roberta, tmp_path / "split", wait=False, updates=30)
    log = run_dir(tmp_path / "split") / "train.log"
    deadline = time.time() + 240
    while (
        time.time() < deadline
        and proc.poll() is None
        and not (log.exists() and "(epoch 1 @ 6 updates" in log.read_text())
    ):
        time.sleep(0.2)
    time.sleep(0.5)  # fairseq copies the checkpoint it saved to checkpoint_best.pt and checkpoint_last.pt
    assert proc.poll() is None, "the run ended before it could be interrupted"
    proc.send_signal(signal.SIGTERM)
    _, err = proc.communicate(timeout=60)
    assert proc.returncode == 143, err[-2000:]
    assert not (run_dir(tmp_path / "split") / "record.json").exists()
    # a forked run's command line is rxf-run's (with --save-root ...split), a fresh interpreter's has the run folder
    leftover = subprocess.run(["pgrep", "-f", str(tmp_path / "split")], capture_output=True, text=True)
    assert leftover.stdout.strip() == "", "fairseq-train outlived rxf-run"

    code, _, err = rxf_run(glue_bin, pretrained_roberta, tmp_path / "split", updates=30)
    assert code == 0, err[-3000:]
    assert "resuming from" in err
    split = json.load(open(run_dir(tmp_path / "split") / "record.json"))
    assert split["best_update"] == whole["best_update"] and split["metrics"] == whole["metrics"]
    assert [a["resumed"] for a in split["attempts"]] == [False, True] and split["attempts"][0]["exit"] is None
    assert 0 < split["time_to_best_s"] <= split["wall_time_s"]
    text = log.read_text()
    assert text.count(attempts.HEADER) == 3  # two headers and the second attempt's footer: both logs kept
    assert '"valid_num_updates": "3"' in text.split("# rxf-run attempt 2")[0]  # attempt 1's validations are there


def logged_numbers(log_path):
    """Every train/valid json line's numbers except the timings: what a run computed, update by update."""
    timing = ("wall", "ups", "wps", "gb_free", "train_wall", "valid_wall")
    numbers = []
    for line in open(log_path, encoding="utf-8"):
        for tag in (" | train_inner | ", " | train | ", " | valid | "):
            if tag in line:
                record = json.loads(line.split(tag, 1)[1])
                numbers.append((tag, {k: v for k, v in record.items() if not k.endswith(timing)}))
    return numbers


def test_a_run_killed_after_its_last_save_is_recorded_without_training_again(glue_bin, pretrained_roberta, tmp_path):
    """Killed between fairseq's save at max_update and the record: resuming would train update max_update + 1
    (fairseq's loop does), so the rerun records the finished run from its log and checkpoints instead."""
    code, _, err = rxf_run(glue_bin, pretrained_roberta, tmp_path / "runs")
    assert code == 0, err[-3000:]
    folder = run_dir(tmp_path / "runs")
    first = json.load(open(folder / "record.json"))
    os.remove(folder / "record.json")  # as a kill right after the last checkpoint leaves it
    log_before = (folder / "train.log").read_text()
    code, _, err = rxf_run(glue_bin, pretrained_roberta, tmp_path / "runs")
    assert code == 0, err[-3000:]
    assert "training had finished" in err and (folder / "train.log").read_text() == log_before
    again = json.load(open(folder / "record.json"))
    assert again["best_update"] == first["best_update"] == 12 and again["metrics"] == first["metrics"]
    assert again["attempts"] == first["attempts"]


def test_a_run_in_a_fork_computes_what_a_fresh_interpreter_computes(glue_bin, pretrained_roberta, tmp_path):
    """rxf-run runs fairseq-train in a fork of itself (fairseq already imported); --fresh-interpreter starts
    ``python -m fairseq_cli.train`` as the dry run prints it. The same run either way, update by update."""
    found = {}
    for mode, extra in (("fork", []), ("fresh", ["--fresh-interpreter"])):
        code, _, err = rxf_run(glue_bin, pretrained_roberta, tmp_path / mode, *extra)
        assert code == 0, err[-3000:]
        found[mode] = json.load(open(run_dir(tmp_path / mode) / "record.json"))
        found[mode]["numbers"] = logged_numbers(run_dir(tmp_path / mode) / "train.log")
    assert len(found["fork"]["numbers"]) > 15  # train_inner every update, valid every 3
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
        code, _, err = rxf_run(glue_bin, pretrained_roberta, tmp_path / "runs")
        assert code == 1 and "Traceback" not in err, err[-2000:]
        (line,) = [text for text in err.splitlines() if text.startswith("rxf-run: error:")]
        assert "checkpoint_last.pt: cannot be read as a fairseq checkpoint" in line
        assert "Delete it" in line and "--force" in line
    code, _, err = rxf_run(glue_bin, pretrained_roberta, tmp_path / "runs", "--force")
    assert code == 0, err[-3000:]
    record = json.load(open(folder / "record.json"))
    assert [a["resumed"] for a in record["attempts"]] == [False]


def rxf_run_error(*args):
    err = io.StringIO()
    with contextlib.redirect_stdout(io.StringIO()), contextlib.redirect_stderr(err):
        try:
            code = runs.main(list(args))
        except SystemExit as exit_:  # argparse
            code = exit_.code
    return code, err.getvalue()


GLUE = ["glue", "RTE", "r3f", "--data", "/data/glue-bin", "--checkpoint", "/m.pt", "--dry-run"]
SUMM = [
    "summarization",
    "cnn_dm",
    "r3f",
    "--data",
    "/d",
    "--checkpoint",
    "/b.pt",
    "--encoder-json",
    "/e.json",
    "--vocab-bpe",
    "/v.bpe",
    "--dry-run",
]


@pytest.mark.parametrize(
    "args, message",
    [
        (GLUE + ["--seeds", "1-3,2"], "names seed(s) 2 more than once"),
        (GLUE + ["--seeds", "3-1"], "is an empty range"),
        (GLUE + ["--seeds", "x"], "expected seeds such as 1-10"),
        (GLUE + ["--num-gpus", "-3"], "--num-gpus: '-3': must be >= 1"),
        (
            ["probe", "retention", "r3f", "--data", "/d", "--checkpoint", "/m.pt", "--cycles", "0", "--dry-run"],
            "--cycles: '0': must be >= 1",
        ),
        (SUMM + ["--gen-batch-size", "0"], "--gen-batch-size: '0': must be >= 1"),
    ],
)
def test_counts_and_seed_lists_are_checked_by_the_parser(args, message):
    code, err = rxf_run_error(*args)
    assert code == 2 and message in err, err


@pytest.mark.parametrize(
    "args, message",
    [
        (GLUE + ["--set", "criterion.eps=-1"], "--eps"),
        (GLUE + ["--set", "criterion.eps=nan"], "--eps"),
        (GLUE + ["--set", "criterion.r3f_lambda=-1"], "--r3f-lambda"),
        (SUMM + ["--set", "generation.beem=4"], "fairseq-generate would refuse this command"),
    ],
)
def test_out_of_range_values_and_unknown_keys_fail_in_a_dry_run(args, message):
    code, err = rxf_run_error(*args)
    assert code == 1 and message in err and len(err.strip().splitlines()) >= 1, err
    assert err.strip().splitlines()[-1].startswith("rxf-run: error:")


def test_every_option_has_help():
    parser = runs.build_parser()
    subparsers = [a for a in parser._actions if a.__class__.__name__ == "_SubParsersAction"][0]
    for name, sub in subparsers.choices.items():
        for action in sub._actions:
            if action.dest in ("help", "config_dir"):
                continue
            assert action.help, f"rxf-run {name}: {action.option_strings or action.dest} has no help"


def test_fairseq_drops_a_short_last_batch_so_every_evaluation_asks_for_batches_of_any_size():
    """fairseq main drops the last batch when it is not a multiple of --required-batch-size-multiple (default 8):
    2 of CNN/DM's 11,490 test articles would never be summarised. rxf-run's evaluations keep every example."""
    import numpy as np
    from fairseq.data.data_utils import batch_by_size

    kept = sum(
        len(b) for b in batch_by_size(np.arange(11490), lambda i: 10, max_sentences=32, required_batch_size_multiple=8)
    )
    assert kept == 11488
    out = io.StringIO()
    with contextlib.redirect_stdout(out), contextlib.redirect_stderr(io.StringIO()):
        assert runs.main([*SUMM[:-1], "--seeds", "1", "--dry-run"]) == 0
        assert runs.main(["xnli", "r3f", "--data", "/x", "--checkpoint", "/m.pt", "--seeds", "1", "--dry-run"]) == 0
    evaluations = [c for c in out.getvalue().splitlines() if "fairseq_cli.generate" in c or "fairseq_cli.validate" in c]
    assert len(evaluations) == 2
    assert all("--required-batch-size-multiple 1" in c for c in evaluations)
