"""A run's attempts, all in one log, and the record they add up to: a resumed run is several fairseq-train processes,
each appending to the log behind a header and, unless killed, a footer with its exit status. The record adds up every
attempt since the last fresh start: the best validation across them (fairseq carries its best value over a resume and
overwrites ``checkpoint_best.pt`` on ties), times summed (read from fairseq's one-second time stamps)."""

import json
import os
import re
import time
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any, Dict, List, Optional, Sequence, Tuple

from rxf_repro.cli import UserError

HEADER = "# rxf-run attempt "
STAMP = "%Y-%m-%d %H:%M:%S"  # fairseq's time stamps (its logging's datefmt)
_HEADER_RE = re.compile(r"^# rxf-run attempt (\d+) \((fresh|resumed)\) started at ([0-9.]+)")
_FOOTER_RE = re.compile(r"^# rxf-run attempt (\d+) ended: exit (-?\d+) after ([0-9.]+) s")
_STAMP_RE = re.compile(r"^(\d{4}-\d\d-\d\d \d\d:\d\d:\d\d) \| ")
_DONE_RE = re.compile(r"done training in ([0-9.]+) seconds")
_BEGIN_TRAINING = "begin training epoch"

Line = Tuple[Optional[float], str]  # (seconds since the attempt started, or None when unknown; the text)


@dataclass
class Attempt:
    number: int
    resumed: bool
    started: float  # time.time() at the start
    lines: List[Line] = field(default_factory=list)
    exit_code: Optional[int] = None  # None: no footer, the attempt was killed (or is running)
    wall_s: Optional[float] = None  # from the footer; a killed attempt lasted until its last time-stamped line

    def last_elapsed(self) -> float:
        return max((elapsed for elapsed, _ in self.lines if elapsed is not None), default=0.0)

    @property
    def duration(self) -> float:
        return self.wall_s if self.wall_s is not None else self.last_elapsed()


def header(number: int, started: float, command: str, *, resumed: bool) -> str:
    when = time.strftime(STAMP, time.localtime(started))
    return f"{HEADER}{number} ({'resumed' if resumed else 'fresh'}) started at {started:.3f} ({when})\n# {command}\n"


def footer(number: int, exit_code: int, seconds: float) -> str:
    return f"{HEADER}{number} ended: exit {exit_code} after {seconds:.2f} s\n"


def _stamp_elapsed(text: str, started: float) -> Optional[float]:
    found = _STAMP_RE.match(text)
    return max(0.0, time.mktime(time.strptime(found.group(1), STAMP)) - started) if found else None


def read_attempts(log_text: str) -> List[Attempt]:
    """The attempts in a run log since its last fresh start."""
    attempts: List[Attempt] = []
    for raw in log_text.splitlines():
        found = _HEADER_RE.match(raw)
        ended = _FOOTER_RE.match(raw)
        if found:
            resumed = found.group(2) == "resumed"
            attempts = attempts if resumed else []
            attempts.append(Attempt(int(found.group(1)), resumed, float(found.group(3))))
        elif ended and attempts:
            attempts[-1].exit_code, attempts[-1].wall_s = int(ended.group(2)), float(ended.group(3))
        elif attempts:
            attempts[-1].lines.append((_stamp_elapsed(raw, attempts[-1].started), raw))
    return attempts


def read_log(path: str) -> List[Attempt]:
    """The attempts of the run log at ``path`` since its last fresh start ([] if there is none)."""
    return read_attempts(Path(path).read_text(encoding="utf-8", errors="replace")) if os.path.exists(path) else []


def json_record(line: str, tag: str) -> Optional[Dict[str, Any]]:
    """The record of a fairseq ``--log-format json`` line (``... | TAG | {...}``), or None: the one parser of those."""
    marker = f"| {tag} | "
    if marker not in line:
        return None
    try:
        found = json.loads(line.split(marker, 1)[1])
    except json.JSONDecodeError:
        return None
    return found if isinstance(found, dict) else None


def json_log(lines: Sequence[Line], tag: str) -> List[Dict[str, Any]]:
    """The json records of one tag, each with ``_elapsed`` (seconds since the attempt started, or None)."""
    return [dict(record, _elapsed=elapsed) for elapsed, line in lines for record in [json_record(line, tag)] if record]


@dataclass
class Best:
    """The validation behind ``checkpoint_best.pt``: its attempt (index into the attempts) and log record."""

    attempt: int
    record: Dict[str, Any]

    @property
    def update(self) -> int:
        return int(self.record["valid_num_updates"])


def best_validation(
    attempts: Sequence[Attempt],
    metric: str,
    *,
    maximize: bool,
    where: str = "the log",
    checkpoint_update: Optional[int] = None,
) -> Best:
    """The validation fairseq saved as checkpoint_best over all attempts: the last one reaching the best value, or
    the last one logged at ``checkpoint_update`` (read from checkpoint_best.pt) when there is one."""
    key = f"valid_{metric}"
    valid = [(i, r) for i, attempt in enumerate(attempts) for r in json_log(attempt.lines, "valid") if key in r]
    if not valid:
        raise UserError(f"{where}: no validation with {key}; fairseq logged none (see the end of the log)")
    at = [(i, r) for i, r in valid if int(r.get("valid_num_updates", -1)) == checkpoint_update]
    if at:
        return Best(*at[-1])
    sign = 1.0 if maximize else -1.0
    return Best(*max(reversed(valid), key=lambda found: sign * float(found[1][key])))  # the last of the best


def validation_curve(attempts: Sequence[Attempt], metric: str) -> List[List[float]]:
    """``[[update, value], ...]`` of ``metric`` at every validated update, in update order. A validation repeated by
    the attempt resuming a killed one counts once, with the later value: the curve of an uninterrupted run."""
    key = f"valid_{metric}"
    curve: Dict[int, float] = {}
    for attempt in attempts:
        for r in json_log(attempt.lines, "valid"):
            if key in r and "valid_num_updates" in r:
                curve[int(r["valid_num_updates"])] = float(r[key])
    return [[update, value] for update, value in sorted(curve.items())]


def _training(attempt: Attempt) -> Tuple[Optional[float], Optional[float]]:
    """(seconds from its start to its first training step, its training time: fairseq's "done training in X seconds",
    a killed attempt's from its first training step to its last time-stamped line); None where it never trained."""
    began = next((e for e, line in attempt.lines if _BEGIN_TRAINING in line and e is not None), None)
    done = [float(m.group(1)) for _, line in attempt.lines for m in [_DONE_RE.search(line)] if m]
    if done:
        return began, done[-1]
    return began, None if began is None else max(0.0, attempt.last_elapsed() - began)


def timings(attempts: Sequence[Attempt], best: Best) -> Dict[str, Any]:
    """The record's times, summed over attempts. ``time_to_best_s`` is the paper's Figure 1 ("the training time in
    seconds to best checkpoint"): every earlier attempt's training time, then the best attempt's from its first step."""
    elapsed = best.record.get("_elapsed")
    trained = [_training(a) for a in attempts]
    began = trained[best.attempt][0]
    to_best = None
    if elapsed is not None and began is not None:
        to_best = round(sum(t or 0.0 for _, t in trained[: best.attempt]) + max(0.0, elapsed - began), 2)
    train = [t for _, t in trained if t is not None]
    starts = [s for s, _ in trained if s is not None]
    return {
        "time_to_best_s": to_best,
        "startup_s": round(sum(starts), 2) if starts else None,
        "wall_time_s": round(sum(a.duration for a in attempts), 2),
        "train_wall_s": round(sum(train), 2) if train else None,
    }


def summary(attempts: Sequence[Attempt]) -> List[Dict[str, Any]]:
    """What the record says of each attempt."""
    return [
        {
            "attempt": a.number,
            "resumed": a.resumed,
            "exit": a.exit_code,
            "wall_time_s": round(a.duration, 2),
            "started": time.strftime("%Y-%m-%dT%H:%M:%S", time.localtime(a.started)),
        }
        for a in attempts
    ]
