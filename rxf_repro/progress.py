"""What a long fairseq run says while it runs: update, loss, time per update and ETA, at a steady rate.

fairseq-train's own output goes to the run's log; ``Progress`` reads the same lines (``--log-format json``) and
prints one short line every ``every`` seconds, and one per validation, so a terminal shows that a run that takes
hours is alive and when it will end. Standard library only (and ``attempts``' parser of those lines).
"""

import sys
import time
from typing import IO, Any, Optional

from rxf_repro.attempts import json_record


def duration(seconds: float) -> str:
    seconds = int(round(seconds))
    hours, rest = divmod(seconds, 3600)
    minutes, seconds = divmod(rest, 60)
    return f"{hours}h{minutes:02d}m" if hours else f"{minutes}m{seconds:02d}s"


class Progress:
    """Feed it every line of a fairseq-train log with the seconds since the process started."""

    def __init__(
        self,
        max_update: Optional[int],
        metric: Optional[str] = None,
        every: float = 30.0,
        out: Optional[IO[str]] = None,
        indent: str = "    ",
    ):
        # sys.stderr when the run starts (not when this module was imported): a forked rxf-run has its own
        self.out = out if out is not None else sys.stderr
        self.max_update, self.metric, self.every, self.indent = max_update, metric, every, indent
        self.first: Optional[tuple] = None  # (elapsed, update) of the first training log line
        self.last_print = time.time()
        self.best: Optional[float] = None

    def _say(self, text: str) -> None:
        print(self.indent + text, file=self.out, flush=True)
        self.last_print = time.time()

    def line(self, elapsed: float, text: str) -> None:
        if self.every <= 0:
            return
        train = json_record(text, "train_inner")
        if train is not None and "num_updates" in train:
            update = int(float(train["num_updates"]))
            if self.first is None:
                self.first = (elapsed, update)
            if time.time() - self.last_print >= self.every:
                self._say(self.train_line(elapsed, update, train.get("loss")))
            return
        valid = json_record(text, "valid")
        if valid is not None and "valid_num_updates" in valid:
            metric = self.metric if self.metric and f"valid_{self.metric}" in valid else "loss"
            best = valid.get(f"valid_best_{metric}")
            self._say(
                f"validation at update {valid['valid_num_updates']}: {metric} {valid.get(f'valid_{metric}')}"
                + (f" (best so far {best})" if best is not None else "")
            )

    def train_line(self, elapsed: float, update: int, loss: Any) -> str:
        parts = [
            f"update {update}"
            + (f"/{self.max_update} ({100 * update / self.max_update:.0f}%)" if self.max_update else "")
        ]
        if loss is not None:
            parts.append(f"loss {loss}")
        if self.first is not None and update > self.first[1] and elapsed > self.first[0]:
            per_update = (elapsed - self.first[0]) / (update - self.first[1])
            parts.append(f"{per_update:.3g} s/update")
            if self.max_update and self.max_update > update:
                parts.append(f"ETA {duration(per_update * (self.max_update - update))}")
        return "  ".join(parts)
