"""One way to run a run: a ``RunSpec`` (its folder, its fairseq-train command, what it records) and the ``Executor``
every family and protocol of ``rxf-run`` hands it to, which alone: prints the commands (``--dry-run``); takes the run's
lock (``runlock``); skips a recorded run (``--force`` starts it afresh); trains or resumes it, every attempt in
``train.log``; finds the validation behind ``checkpoint_best.pt``; runs the spec's evaluation; writes the record once.
A *unit* is what one process trains under one lock: a run, or a protocol whose steps each start from the one before."""

import contextlib
import glob
import importlib
import json
import logging
import os
import shlex
import shutil
import subprocess
import sys
import time
from collections import Counter
from dataclasses import dataclass, field
from typing import Any, Callable, Dict, Iterator, List, Optional, Sequence, Tuple

from tqdm import tqdm

from rxf_repro import attempts, outputs, process, records, runlock
from rxf_repro.cli import UserError
from rxf_repro.commands import last_value
from rxf_repro.progress import Progress

FAIRSEQ_LOG_FORMAT = "%(asctime)s | %(levelname)s | %(name)s | %(message)s"  # as fairseq_cli's modules set it
PROBE_FEATURES = "rxf_repro.probe_features"  # the linear probe fit on cached features (rxf-run --probe-fit cached)
RESETS = ("--reset-optimizer", "--reset-dataloader", "--reset-meters")  # fine-tuning's start from a pretrained model


def log(message: str) -> None:
    print(message, file=sys.stderr, flush=True)


def fairseq_tool(tool: str) -> List[str]:
    return [sys.executable, "-m", f"fairseq_cli.{tool}"]


def preload(module: str) -> None:
    """Import a fairseq_cli module before forking, so that no run pays for it again, and torch._dynamo, which torch's
    optimizers import at their first step (1.5 s a run otherwise). The import's logging setup is undone."""
    root = logging.getLogger()
    handlers, level = list(root.handlers), root.level
    for name in (module, "torch._dynamo"):
        importlib.import_module(name)
    root.handlers[:], root.level = handlers, level


def fairseq_main(module: str, argv: Sequence[str]) -> int:
    """In a forked child: ``python -m MODULE ARGV...`` with a fresh interpreter's logging (rxf-demo sets the root
    logger) and threads. fairseq seeds every generator from ``--seed`` itself: the run is the same run."""
    level = os.environ.get("LOGLEVEL", "INFO").upper()
    logging.basicConfig(format=FAIRSEQ_LOG_FORMAT, datefmt=attempts.STAMP, level=level, stream=sys.stdout, force=True)
    threads = os.environ.get("OMP_NUM_THREADS")
    if threads and threads.isdigit():
        import torch

        torch.set_num_threads(int(threads))
    sys.argv = [module.replace(".", "/") + ".py", *argv]
    importlib.import_module(module).cli_main()
    return 0


def stream(
    command: List[str],
    log_path: str,
    *,
    resumed: bool = False,
    progress: Optional[Progress] = None,
    in_process: bool = False,
    previous: Optional[List[attempts.Attempt]] = None,
) -> Tuple[int, attempts.Attempt]:
    """Run ``command`` as a new attempt appended to the log ``log_path``, each line timed and shown to ``progress``;
    with ``in_process`` its ``python -m MODULE ...`` runs in a fork of this interpreter. ``previous``: the log's
    attempts, when the caller has read them."""
    previous = attempts.read_log(log_path) if previous is None else previous
    current = attempts.Attempt(previous[-1].number + 1 if previous else 1, resumed, time.time())
    progress = progress or Progress(None, every=0)
    with open(log_path, "a", encoding="utf-8") as logf, process.children() as running:
        logf.write(attempts.header(current.number, current.started, shlex.join(command), resumed=resumed))
        logf.flush()
        if in_process:
            preload(command[2])
            proc: Any = process.ForkedChild(fairseq_main, (command[2], command[3:]))
        else:
            env = dict(os.environ, PYTHONUNBUFFERED="1")
            proc = process.start_child(
                command, stdout=subprocess.PIPE, stderr=subprocess.STDOUT, text=True, errors="replace", env=env
            )
        running.append(proc)
        with proc.stdout, contextlib.closing(progress):  # the pipe's read end and the bar: closed in every case
            for line in proc.stdout:
                logf.write(line)
                logf.flush()
                current.lines.append((time.time() - current.started, line.rstrip("\n")))
                progress.line(line)
        current.exit_code, current.wall_s = proc.wait(), time.time() - current.started
        logf.write(attempts.footer(current.number, current.exit_code, current.wall_s))
    return current.exit_code, current


def checkpoint_update(path: str) -> int:
    """The update a fairseq checkpoint was saved at, read without loading its tensors."""
    import torch

    import rxf_fairseq.checkpoint_compat as compat

    compat.install()
    try:
        state = torch.load(path, map_location="cpu", weights_only=True, mmap=True)
        return int(state["optimizer_history"][-1]["num_updates"])
    except Exception as error:  # EOFError, RuntimeError (zip), UnpicklingError, KeyError, ...
        reason = str(error).splitlines()[0][:200] if str(error) else type(error).__name__
        raise UserError(
            f"{path}: cannot be read as a fairseq checkpoint ({type(error).__name__}: {reason}); a run "
            f"killed while saving leaves such a file. Delete it to restart this run from the pretrained "
            f"model, or pass --force to start the run afresh"
        ) from None


def resuming(argv: Sequence[str], last: str) -> List[str]:
    """``argv`` continuing an interrupted run from its ``last`` checkpoint: ``--restore-file LAST`` appended (a
    later one wins) and fine-tuning's resets dropped (they would restart the optimizer, the data and the meters)."""
    return [a for a in argv if a not in RESETS] + ["--restore-file", last]


def max_update_of(argv: Sequence[str]) -> Optional[int]:
    value = last_value(argv, "--max-update")
    return int(value) if value and value.isdigit() and int(value) > 0 else None


@dataclass
class Trained:
    """Every attempt since the run's fresh start and the validation behind its best checkpoint."""

    attempts: List[attempts.Attempt]
    best: attempts.Best
    curve: List[List[float]]  # [[update, value], ...] of the checkpoint metric at every validation


@dataclass
class RunSpec:
    """One run: ``fields`` are its record's fields known before it runs, ``evaluate`` returns the rest (running any
    evaluation through ``executor.execute``), ``shown`` the other commands ``--dry-run`` prints. A chain step
    (``keep_last=False``) drops its ``checkpoint_last.pt`` once recorded: only its best checkpoint is used again."""

    label: str
    run_dir: str
    train: List[str]
    cfg: Dict[str, Any]
    fields: Dict[str, Any]
    evaluate: Callable[["Executor", Trained], Dict[str, Any]]
    shown: List[List[str]] = field(default_factory=list)
    record_name: str = records.RECORD_NAME
    keep_last: bool = True

    @property
    def record_path(self) -> str:
        return os.path.join(self.run_dir, self.record_name)


@dataclass
class Planned:
    """A run as the Slurm launcher plans it: the unit (folder) that trains it, and whether its record exists."""

    unit: str
    spec: RunSpec
    done: bool


@dataclass
class Executor:
    """Runs ``RunSpec``s under rxf-run's options. With a ``plan`` list it trains nothing and appends a ``Planned`` per
    run instead; with ``only`` (a unit's folder) it runs that unit's runs and passes over the others without a word."""

    dry_run: bool = False
    force: bool = False
    tiny: bool = False
    progress_every: float = 60
    in_process: bool = True
    plan: Optional[List[Planned]] = None
    only: Optional[str] = None
    on_unit: Optional[Callable[[str], None]] = None  # called with a unit's folder once its lock is taken
    only_seen: bool = field(default=False, init=False)  # ``only`` was among the units the arguments plan
    tally: Counter = field(default_factory=Counter, init=False)  # trained / done already / trained elsewhere
    _unit: Optional[str] = field(default=None, init=False)  # the unit whose lock this process holds now

    def selected(self, folder: str) -> bool:
        return self.only is None or os.path.abspath(folder) == os.path.abspath(self.only)

    @contextlib.contextmanager
    def unit(self, folder: str) -> Iterator[bool]:
        """The runs of the block are one unit, ``folder``'s: the block goes on (True) only when the unit is this
        process's to run: selected by ``only`` and its lock taken. A run outside any unit block is a unit of its own."""
        if not self.selected(folder):
            yield False
            return
        self.only_seen = True
        planning = self.dry_run or self.plan is not None
        with contextlib.nullcontext(True) if planning else runlock.holding(folder) as mine:
            if not mine:
                owner = runlock.owner_text(outputs.read_note(folder, runlock.OWNER_NAME))
                log(f"  skipped: {folder} is being trained by {owner}")
                self.tally["trained elsewhere"] += 1
                yield False
                return
            if self.force and not planning:
                self.start_afresh(folder)
            if self.on_unit is not None and not planning:
                self.on_unit(folder)
            self._unit = folder
            try:
                yield True
            finally:
                self._unit = None

    def start_afresh(self, folder: str) -> None:
        """``--force``: empty the unit's folder once, but its lock, its holder's note and its Slurm job. A Slurm job
        requeued after it did so resumes instead (its note names the job), so a preempted forced sweep neither starts
        over nor mixes old steps with new ones."""
        job = runlock.slurm_job()
        if job is not None and outputs.read_note(folder, runlock.FORCED_NAME).get("job_id") == job:
            log(f"  --force: {folder} was started afresh by this job's first execution; resuming it")
            return
        log(f"  --force: starting {folder} afresh")
        for name in os.listdir(folder):
            if name in runlock.KEPT or any(name.startswith(f".{kept}.tmp-") for kept in runlock.KEPT):
                continue  # a kept file, or one being written (write_file_atomically's temporary name)
            path = os.path.join(folder, name)
            if os.path.isdir(path) and not os.path.islink(path):
                shutil.rmtree(path)
            else:
                os.remove(path)
        if job is not None:
            outputs.write_note(folder, runlock.FORCED_NAME, {"job_id": job})

    def run(self, spec: RunSpec) -> Optional[Dict[str, Any]]:
        """The spec's record (None for a dry run, a planned run, a run done already or one trained elsewhere)."""
        if self._unit is None and not self.selected(spec.run_dir):
            return None
        log(spec.label)
        if self.plan is not None:
            done = os.path.exists(spec.record_path) and not self.force
            self.plan.append(Planned(self._unit or spec.run_dir, spec, done))
        if self.dry_run:
            for command in [spec.train, *spec.shown]:
                print(shlex.join(command), flush=True)
        if self.dry_run or self.plan is not None:
            return None
        with contextlib.nullcontext(True) if self._unit is not None else self.unit(spec.run_dir) as mine:
            return self.locked_run(spec) if mine else None

    def locked_run(self, spec: RunSpec) -> Optional[Dict[str, Any]]:
        """``run`` with the unit's lock held."""
        if os.path.exists(spec.record_path):  # --force emptied the unit when it took its lock
            log(f"  done already: {spec.record_path} (--force re-runs)")
            self.tally["done already"] += 1
            return None
        trained = self.train(spec)
        record = dict(
            spec.fields,
            **spec.evaluate(self, trained),
            best_update=trained.best.update,
            valid_curve=trained.curve,
            **attempts.timings(trained.attempts, trained.best),
            attempts=attempts.summary(trained.attempts),
            command=spec.train[2:],
            tiny=bool(self.tiny),
        )
        records.write_record(spec.record_path, record)
        self.tally["trained"] += 1
        took = tqdm.format_interval(record["wall_time_s"])
        log(
            f"  record: {spec.record_path}  metrics: {json.dumps(record['metrics'])}; best update "
            f"{trained.best.update}, {took} in {len(trained.attempts)} attempt(s)"
        )
        last = os.path.join(spec.run_dir, "checkpoint_last.pt")
        if not spec.keep_last and os.path.exists(last):
            os.remove(last)
        return record

    def execute(self, command: List[str], run_dir: str, log_name: str, **options: Any) -> attempts.Attempt:
        """One attempt of ``command`` (``options``: ``stream``'s), appended to ``run_dir/log_name``; a failure is one
        error with the log's tail."""
        os.makedirs(run_dir, exist_ok=True)
        log_path = os.path.join(run_dir, log_name)
        code, current = stream(command, log_path, in_process=self.in_process, **options)
        if code != 0:
            tail = "\n".join(line for _, line in current.lines[-25:])
            raise UserError(f"{command[2]} failed (exit {code}); full log: {log_path}\n{tail}")
        return current

    def train(self, spec: RunSpec) -> Trained:
        """Train or resume the run (or read back one whose training had finished before it was recorded)."""
        last, best = os.path.join(spec.run_dir, "checkpoint_last.pt"), os.path.join(spec.run_dir, "checkpoint_best.pt")
        log_path = os.path.join(spec.run_dir, "train.log")
        command, max_update = spec.train, max_update_of(spec.train)
        update = checkpoint_update(last) if os.path.exists(last) else None
        # killed after fairseq's last save but before it exited: resuming would train an update more than asked
        finished = update is not None and max_update is not None and update >= max_update
        if update is None:
            for stale in glob.glob(os.path.join(spec.run_dir, "checkpoint*.pt")):
                os.remove(stale)  # an earlier attempt killed before its first checkpoint_last
            log(f"  log: {log_path}")
        elif finished:
            log(f"  log: {log_path} (training had finished: {last} is at update {update}; not resumed)")
        else:
            log(f"  log: {log_path} (resuming from {last}, update {update})")
            if last_value(command, "--restore-file") != last:  # the spec was made before the lock was taken
                command = resuming(command, last)
        metric = spec.cfg["checkpoint"].get("best_checkpoint_metric", "loss")
        maximize = bool(spec.cfg["checkpoint"].get("maximize_best_checkpoint_metric"))
        previous = attempts.read_log(log_path)  # read once: for the new attempt's number and the record
        found = list(previous) if update is not None else []  # the attempts since the fresh start
        if not finished:
            progress = Progress(max_update, metric, every=self.progress_every)
            attempt = self.execute(
                command, spec.run_dir, "train.log", resumed=update is not None, progress=progress, previous=previous
            )
            found.append(attempt)
        saved = checkpoint_update(best) if os.path.exists(best) else None
        validation = attempts.best_validation(found, metric, maximize=maximize, where=log_path, checkpoint_update=saved)
        return Trained(found, validation, attempts.validation_curve(found, metric))

    def summary(self, started: float, save_root: str) -> str:
        elsewhere = self.tally["trained elsewhere"]
        return (
            f"rxf-run: {self.tally['trained']} run(s) trained, {self.tally['done already']} done already"
            + (f", {elsewhere} being trained by another process" if elsewhere else "")
            + f", in {tqdm.format_interval(time.time() - started)}; records under {save_root}"
        )
