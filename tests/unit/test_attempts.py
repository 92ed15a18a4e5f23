"""rxf-run after interruptions: every attempt's log kept, records true across attempts, unreadable checkpoints,
--force, and the option checks that run before anything trains."""

import json
import time

import pytest

from rxf_repro import attempts, runs
from rxf_repro.cli import UserError
from rxf_repro.progress import Progress
from tests.helpers import flag, rxf_run_dry, rxf_run_error


def fake_log(*attempts_lines, started=1000.0):
    """A train.log of several attempts: each a list of (seconds, fairseq json tag, record) plus an exit code."""
    text = []
    for number, (lines, code) in enumerate(attempts_lines, start=1):
        begin = started + 100 * (number - 1)
        text.append(attempts.header(number, begin, "fairseq-train ...", resumed=number > 1))
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
    best = attempts.best_validation(found, "accuracy", maximize=True)
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
    assert attempts.best_validation(attempts.read_attempts(log), "accuracy", maximize=True).update == 10


def test_the_update_stored_in_checkpoint_best_wins_over_the_log():
    log = fake_log(([(5, "valid", valid(5, 70.0)), (9, "valid", valid(9, 60.0))], 0))
    assert (
        attempts.best_validation(attempts.read_attempts(log), "accuracy", maximize=True, checkpoint_update=9).update
        == 9
    )


def test_a_fresh_start_forgets_the_attempts_before_it():
    log = (
        fake_log(([(5, "valid", valid(5, 90.0))], None))
        + attempts.header(2, 2000.0, "again", resumed=False)
        + "2026-01-01 00:00:00 | INFO | valid | "
        + json.dumps(valid(3, 40.0))
        + "\n"
    )
    found = attempts.read_attempts(log)
    assert len(found) == 1 and attempts.best_validation(found, "accuracy", maximize=True).update == 3


def test_no_validation_is_one_line_naming_the_log():
    with pytest.raises(UserError, match="runs/x/train.log: no validation with valid_accuracy"):
        attempts.best_validation(
            attempts.read_attempts(fake_log(([(1, "train", {"loss": "1"})], 0))),
            "accuracy",
            maximize=True,
            where="runs/x/train.log",
        )


def test_progress_is_a_bar_over_the_updates_and_a_line_per_validation(capsys):
    """What a run prints while it runs (tqdm's bar), read from fairseq's json lines; nothing with --progress-every 0."""
    train = '2026-12-06 10:00:00 | INFO | train_inner | {"num_updates": "%d", "loss": "0.5"}'
    validation = '| INFO | valid | {"valid_num_updates": "6", "valid_accuracy": "61.0", "valid_best_accuracy": "61.0"}'
    progress = Progress(10, "accuracy", every=0.01)
    for update in (4, 5, 6):  # resumed after update 3
        progress.line(train % update)
    progress.line(validation)
    progress.close()
    err = capsys.readouterr().err
    assert "6/10" in err and "loss=0.5" in err and "update" in err
    assert "\r" not in err  # stderr is not a terminal here: lines, not a bar redrawn
    assert "validation at update 6: accuracy 61.0 (best so far 61.0)" in err
    silent = Progress(10, "accuracy", every=0)
    for line in (train % 4, validation):
        silent.line(line)
    silent.close()
    assert capsys.readouterr().err == ""


# ------------------------------------------------------------------------------------ real rxf-run runs


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
    commands = rxf_run_dry(*SUMM[:-1], "--seeds", "1") + rxf_run_dry(
        "xnli", "r3f", "--data", "/x", "--checkpoint", "/m.pt", "--seeds", "1"
    )
    evaluations = [c for c in commands if c[2] in ("fairseq_cli.generate", "fairseq_cli.validate")]
    assert len(evaluations) == 2
    assert all(flag(c, "--required-batch-size-multiple") == "1" for c in evaluations)
