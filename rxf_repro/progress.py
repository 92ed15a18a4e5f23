"""What a long fairseq run says while it runs, on stderr: a tqdm bar over its updates (rate, ETA, the loss) and a
line per validation, read from the lines fairseq-train logs (``--log-format json``); its full output is in the log."""

import io
import sys
import time
from typing import Optional

from tqdm import tqdm

from rxf_repro.attempts import json_record


class _Bar(tqdm):
    monitor_interval = 0  # no monitor thread: rxf-run forks its fairseq runs, and a fork must not copy a held lock


class Progress:
    """Feed it every line of a fairseq-train run; the bar refreshes at most every ``every`` seconds (0: silent)."""

    def __init__(self, max_update: Optional[int], metric: Optional[str] = None, every: float = 30.0):
        self.max_update, self.metric, self.every = max_update, metric, every
        self.bar: Optional[tqdm] = None  # started at the first training line: rate and ETA of training alone
        self.tty = sys.stderr.isatty()  # else a log file (Slurm's, 2>FILE): a line every ``every`` s, no redrawing

    def line(self, text: str) -> None:
        if self.every <= 0:
            return
        train = json_record(text, "train_inner")
        if train is not None and "num_updates" in train:
            update = int(float(train["num_updates"]))
            if self.bar is None:  # on sys.stderr as it is now (a forked rxf-run has its own)
                self.bar = _Bar(
                    desc="    training",
                    total=self.max_update,
                    initial=update,
                    unit="update",
                    mininterval=self.every,
                    file=sys.stderr if self.tty else io.StringIO(),
                )
                self.printed = time.monotonic()
            self.bar.set_postfix(loss=train.get("loss"), refresh=False)
            self.bar.update(update - self.bar.n)
            if not self.tty and time.monotonic() - self.printed >= self.every:
                self.printed = time.monotonic()
                print(self.bar, file=sys.stderr, flush=True)
            return
        valid = json_record(text, "valid")
        if valid is not None and "valid_num_updates" in valid:
            metric = self.metric if f"valid_{self.metric}" in valid else "loss"
            best = valid.get(f"valid_best_{metric}")
            tqdm.write(
                f"    validation at update {valid['valid_num_updates']}: {metric} {valid.get(f'valid_{metric}')}"
                + (f" (best so far {best})" if best is not None else ""),
                file=sys.stderr,
            )

    def close(self) -> None:
        if self.bar is not None:
            if not self.tty:
                print(self.bar, file=sys.stderr, flush=True)
            self.bar.close()
