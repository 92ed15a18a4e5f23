"""One way to run a run: a ``RunSpec`` (its folder, its fairseq-train command, what it records) and the
``Executor`` that every family and protocol of ``rxf-run`` hands its runs to.

For each spec the executor does, in this order and nowhere else: print the commands (``--dry-run``); take the
run's lock (``rxf_repro/runlock.py``; a run another process trains is skipped); skip a run whose record exists
(``--force`` starts it afresh); train or resume it, every attempt appended to ``train.log``; find the validation
behind ``checkpoint_best.pt`` across the attempts; run the spec's evaluation of that checkpoint; write the record
once (``rxf_repro/records.py``).

A *unit* is what one process trains under one lock: a run, or a protocol whose steps each start from the one
before (``Executor.unit``). The Slurm launcher (``rxf_repro/slurm.py``) plans the units (``plan``) and has each
of its array tasks execute one (``only``).
"""

import contextlib
import glob
import json
import os
import pathlib
import shlex
import shutil
import subprocess
import sys
import time
from collections import Counter
from dataclasses import dataclass, field
from typing import Any, Callable, Dict, Iterator, List, Optional, Sequence, Tuple

from rxf_repro import attempts, outputs, process, records, runlock
from rxf_repro.progress import Progress, duration


class RunError(Exception):
    """A run that cannot be set up or that failed; the message says which and where its log is."""


def log(message: str) -> None:
    print(message, file=sys.stderr, flush=True)


FAIRSEQ_LOG_FORMAT = "%(asctime)s | %(levelname)s | %(name)s | %(message)s"  # as fairseq_cli's modules set it


def fairseq_tool(tool: str) -> List[str]:
    return [sys.executable, "-m", f"fairseq_cli.{tool}"]


PROBE_FEATURES = "rxf_repro.probe_features"  # the linear probe fit on cached features (rxf-run --probe-fit cached)


def in_process_module(command: Sequence[str]) -> Optional[str]:
    """``fairseq_cli.X`` (or the plugin's probe fitter) for a ``python -m`` command this interpreter can run in a
    fork, else None."""
    if len(command) > 2 and command[0] == sys.executable and command[1] == "-m":
        if command[2].startswith("fairseq_cli.") or command[2] == PROBE_FEATURES:
            return command[2]
    return None


def preload(module: str) -> None:
    """Import a fairseq_cli module here, before forking, so that no run pays for it again; and torch._dynamo,
    which torch's optimizers import at their first step (1.5 s a run otherwise). The module's import configures
    the root logger to print on our stdout; that is undone (the forked run configures its own)."""
    import importlib
    import logging

    root = logging.getLogger()
    handlers, level = list(root.handlers), root.level
    for name in (module, "torch._dynamo"):  # each imported once: import_module returns one already in sys.modules
        importlib.import_module(name)
    root.handlers[:], root.level = handlers, level


def fairseq_main(module: str, argv: Sequence[str]) -> int:
    """In a forked child: what ``python -m MODULE ARGV...`` does, in this already-started interpreter: fairseq's
    logging on stdout at ``$LOGLEVEL`` (INFO), the thread count ``$OMP_NUM_THREADS`` asks for, then the module's
    ``cli_main`` (fairseq seeds every generator from ``--seed`` itself, so the run is the same run)."""
    import importlib
    import logging

    logging.basicConfig(  # force: the root logger's handlers and level as a fresh interpreter's (rxf-demo sets them)
        format=FAIRSEQ_LOG_FORMAT,
        datefmt="%Y-%m-%d %H:%M:%S",
        level=os.environ.get("LOGLEVEL", "INFO").upper(),
        stream=sys.stdout,
        force=True,
    )
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
    resumed: bool = False,
    progress: Optional[Progress] = None,
    in_process: bool = False,
) -> Tuple[int, attempts.Attempt]:
    """Run ``command`` as a new attempt of the run whose log is ``log_path``: its output is appended behind an
    attempt header (earlier attempts stay in the log), each line timed as it arrives and shown to ``progress``.
    With ``in_process`` a fairseq_cli command runs in a fork of this interpreter (``process.ForkedChild``)
    instead of a new one. Ctrl-C or SIGTERM stop the child (and what it started) before they propagate."""
    previous = (
        attempts.read_attempts(pathlib.Path(log_path).read_text(encoding="utf-8", errors="replace"))
        if os.path.exists(log_path)
        else []
    )
    number = (previous[-1].number + 1) if previous else 1
    current = attempts.Attempt(number, resumed, time.time())
    with open(log_path, "a", encoding="utf-8") as logf, process.children() as running:
        logf.write(attempts.header(number, resumed, current.started, shlex.join(command)))
        logf.flush()
        module = in_process_module(command) if in_process else None
        if module is not None:
            preload(module)
            proc: Any = process.ForkedChild(fairseq_main, (module, command[3:]))
        else:
            proc = process.start_child(
                command,
                stdout=subprocess.PIPE,
                stderr=subprocess.STDOUT,
                text=True,
                errors="replace",
                env=dict(os.environ, PYTHONUNBUFFERED="1"),
            )
        running.append(proc)
        assert proc.stdout is not None
        with proc.stdout:  # the pipe's read end: closed once read to its end
            for line in proc.stdout:
                elapsed = time.time() - current.started
                logf.write(line)
                logf.flush()
                current.lines.append((elapsed, line.rstrip("\n")))
                if progress is not None:
                    progress.line(elapsed, line)
        code = proc.wait()
        current.exit_code, current.wall_s = code, time.time() - current.started
        logf.write(attempts.footer(number, code, current.wall_s))
    return code, current


def checkpoint_update(path: str) -> int:
    """The update a fairseq checkpoint was saved at, read without loading its tensors; ``RunError`` saying what
    to do if the file is unreadable (truncated by a kill during saving, or not a checkpoint at all)."""
    import torch

    import rxf_fairseq.checkpoint_compat as compat

    compat.install()
    try:
        state = torch.load(path, map_location="cpu", weights_only=True, mmap=True)
        return int(state["optimizer_history"][-1]["num_updates"])
    except Exception as error:  # EOFError, RuntimeError (zip), UnpicklingError, KeyError, ...
        reason = str(error).splitlines()[0][:200] if str(error) else type(error).__name__
        raise RunError(
            f"{path}: cannot be read as a fairseq checkpoint ({type(error).__name__}: {reason}); a run "
            f"killed while saving leaves such a file. Delete it to restart this run from the pretrained "
            f"model, or pass --force to start the run afresh"
        ) from None


RESETS = ("--reset-optimizer", "--reset-dataloader", "--reset-meters")  # fine-tuning's start from a pretrained model


def restore_file_of(argv: Sequence[str]) -> Optional[str]:
    """The ``--restore-file`` a fairseq command ends with (the last one wins, as in fairseq's parser)."""
    found = [argv[i + 1] for i, a in enumerate(argv[:-1]) if a == "--restore-file"]
    return found[-1] if found else None


def resuming(argv: Sequence[str], last: str) -> List[str]:
    """``argv`` continuing an interrupted run from its ``last`` checkpoint: ``--restore-file LAST`` appended (a
    later one wins) and fine-tuning's resets dropped (they would restart the optimizer, the data and the meters)."""
    return [a for a in argv if a not in RESETS] + ["--restore-file", last]


def max_update_of(argv: Sequence[str]) -> Optional[int]:
    """The ``--max-update`` a fairseq command ends with (the last one wins, as in fairseq's parser)."""
    found = [argv[i + 1] for i, a in enumerate(argv[:-1]) if a == "--max-update"]
    try:
        return int(found[-1]) if found and int(found[-1]) > 0 else None
    except ValueError:
        return None


@dataclass
class Trained:
    """What training left: every attempt since the run's fresh start and the validation behind its best
    checkpoint (``attempts.best_validation``)."""

    run_dir: str
    attempts: List[attempts.Attempt]
    best: attempts.Best
    curve: List[List[float]]  # [[update, value], ...] of the checkpoint metric at every validation


@dataclass
class RunSpec:
    """One run. ``fields`` are the record's fields known before it runs (kind, task, method, seed, hparams,
    probe, ...); ``evaluate(executor, trained)`` returns the rest (``metrics`` and what the kind adds), running
    any evaluation of the best checkpoint through ``executor.execute``; ``shown`` are the commands besides
    training that ``--dry-run`` prints. A chain step (``keep_last=False``) drops its ``checkpoint_last.pt``
    once recorded: only its best checkpoint is used again."""

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
    def best_checkpoint(self) -> str:
        return os.path.join(self.run_dir, "checkpoint_best.pt")

    @property
    def record_path(self) -> str:
        return os.path.join(self.run_dir, self.record_name)


@dataclass
class Planned:
    """A run as the Slurm launcher plans it: the unit (folder) that trains it, and whether its record exists."""

    unit: str
    spec: RunSpec
    done: bool


class Executor:
    """Runs ``RunSpec``s under rxf-run's options: ``dry_run``, ``force``, ``tiny`` (recorded), ``progress_every``,
    ``in_process`` (fairseq's commands in a fork of this interpreter rather than a new one each). With a ``plan``
    list it trains nothing and appends a ``Planned`` per run instead; with ``only`` (a unit's folder) it runs that
    unit's runs and passes over the others without a word."""

    def __init__(
        self,
        dry_run: bool = False,
        force: bool = False,
        tiny: bool = False,
        progress_every: float = 60,
        in_process: bool = True,
        plan: Optional[List[Planned]] = None,
        only: Optional[str] = None,
        on_unit: Optional[Callable[[str], None]] = None,
    ):
        self.dry_run, self.force, self.tiny, self.progress_every = dry_run, force, tiny, progress_every
        self.in_process = in_process
        self.plan, self.only = plan, (os.path.abspath(only) if only else None)
        self.on_unit = on_unit  # called with a unit's folder once its lock is taken (a Slurm task claims it)
        self.only_seen = False  # ``only`` was among the units the arguments plan
        self.tally: Counter = Counter()  # runs trained / done already / trained elsewhere, for the summary
        self._unit: Optional[str] = None  # the unit whose lock this process holds now

    def selected(self, folder: str) -> bool:
        return self.only is None or os.path.abspath(folder) == self.only

    @contextlib.contextmanager
    def unit(self, folder: str) -> Iterator[bool]:
        """The runs of the block are one unit, ``folder``'s: the block goes on (True) only when the unit is this
        process's to run: selected by ``only`` and its lock taken (nobody else training it). A run outside any
        unit block is a unit of its own."""
        if not self.selected(folder):
            yield False
            return
        self.only_seen = True
        if self.dry_run or self.plan is not None:
            self._unit = folder
            try:
                yield True
            finally:
                self._unit = None
            return
        try:
            with runlock.holding(folder) as held:
                if not held:
                    owner = runlock.owner_text(runlock.read_owner(folder))
                    log(f"  skipped: {folder} is being trained by {owner}")
                    self.tally["trained elsewhere"] += 1
                    yield False
                    return
                if self.force:
                    self.start_afresh(folder)
                if self.on_unit is not None:
                    self.on_unit(folder)
                self._unit = folder
                try:
                    yield True
                finally:
                    self._unit = None
        except runlock.LockError as error:
            raise RunError(str(error)) from None

    def start_afresh(self, folder: str) -> None:
        """``--force``: empty the unit's folder (its runs' checkpoints, logs and records), once. A Slurm job requeued
        after it did so resumes instead (its note, ``runlock.FORCED_NAME``, names the job), so a preempted forced
        sweep neither starts over nor mixes old steps with new ones."""
        job = runlock.slurm_job()
        note = os.path.join(folder, runlock.FORCED_NAME)
        if job is not None and os.path.exists(note):
            with open(note, encoding="utf-8") as f:
                if f.read().strip() == job:
                    log(f"  --force: {folder} was started afresh by this job's first execution; resuming it")
                    return
        log(f"  --force: starting {folder} afresh")
        clear_run_dir(folder)
        if job is not None:
            outputs.write_file_atomically(note, job + "\n")

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
        if self._unit is not None:
            return self.locked_run(spec)
        with self.unit(spec.run_dir) as mine:
            return self.locked_run(spec) if mine else None

    def locked_run(self, spec: RunSpec) -> Optional[Dict[str, Any]]:
        """``run`` with the unit's lock held."""
        if self.done(spec.run_dir, spec.record_name):
            return None
        trained = self.train(spec.train, spec.run_dir, spec.cfg)
        fields = spec.evaluate(self, trained)
        record = self.record(
            spec.run_dir,
            spec.record_name,
            **spec.fields,
            **fields,
            best_update=trained.best.update,
            valid_curve=trained.curve,
            **attempts.timings(trained.attempts, trained.best),
            attempts=attempts.summary(trained.attempts),
            command=spec.train[2:],
        )
        last = os.path.join(spec.run_dir, "checkpoint_last.pt")
        if not spec.keep_last and os.path.exists(last):
            os.remove(last)
        return record

    def done(self, run_dir: str, record_name: str) -> bool:
        if os.path.exists(os.path.join(run_dir, record_name)):  # --force emptied the unit when it took its lock
            log(f"  done already: {run_dir}/{record_name} (--force re-runs)")
            self.tally["done already"] += 1
            return True
        return False

    def execute(
        self,
        command: List[str],
        run_dir: str,
        log_name: str,
        resumed: bool = False,
        progress: Optional[Progress] = None,
    ) -> attempts.Attempt:
        """One attempt of ``command``, its output appended to ``run_dir/log_name``; raises ``RunError`` with the
        log's tail if it fails."""
        os.makedirs(run_dir, exist_ok=True)
        log_path = os.path.join(run_dir, log_name)
        code, current = stream(command, log_path, resumed, progress, self.in_process)
        if code != 0:
            tail = "\n".join(line for _, line in current.lines[-25:])
            raise RunError(f"{command[2]} failed (exit {code}); full log: {log_path}\n{tail}")
        return current

    def train(self, command: List[str], run_dir: str, cfg: Dict[str, Any]) -> Trained:
        """Train (or resume) the run in ``run_dir``."""
        last, best_path = os.path.join(run_dir, "checkpoint_last.pt"), os.path.join(run_dir, "checkpoint_best.pt")
        log_path = os.path.join(run_dir, "train.log")
        resumed = os.path.exists(last)
        finished = False
        max_update = max_update_of(command)
        if resumed:
            update = checkpoint_update(last)  # an unreadable one: one line saying what to do
            # killed after fairseq's last save but before it exited: resuming would train an update more than asked
            finished = max_update is not None and update >= max_update
            if finished:
                log(f"  log: {log_path} (training had finished: {last} is at update {update}; not resumed)")
            else:
                log(f"  log: {log_path} (resuming from {last}, update {update})")
        else:
            for stale in glob.glob(os.path.join(run_dir, "checkpoint*.pt")):
                os.remove(stale)  # an earlier attempt killed before its first checkpoint_last
            log(f"  log: {log_path}")
        checkpoint = cfg["checkpoint"]
        metric = checkpoint.get("best_checkpoint_metric", "loss")
        maximize = bool(checkpoint.get("maximize_best_checkpoint_metric"))
        if resumed and restore_file_of(command) != last:  # the spec was made before the run's lock was taken
            command = resuming(command, last)
        if not finished:
            progress = Progress(max_update, metric, every=self.progress_every)
            current = self.execute(command, run_dir, "train.log", resumed, progress)
        runs_ = attempts.read_attempts(pathlib.Path(log_path).read_text(encoding="utf-8", errors="replace"))
        if not finished:
            runs_[-1] = current  # the attempt just run: its times as measured, not re-read at 1 s resolution
        saved = checkpoint_update(best_path) if os.path.exists(best_path) else None
        try:
            best = attempts.best_validation(runs_, metric, maximize, log_path, saved)
        except attempts.AttemptError as error:
            raise RunError(str(error)) from None
        return Trained(run_dir, runs_, best, attempts.validation_curve(runs_, metric))

    def record(self, run_dir: str, record_name: str = records.RECORD_NAME, **fields: Any) -> Dict[str, Any]:
        record = dict(fields, tiny=bool(self.tiny))
        path = records.write_record(os.path.join(run_dir, record_name), record)
        self.tally["trained"] += 1
        log(
            f"  record: {path}  metrics: {json.dumps(record['metrics'])}; best update "
            f"{record['best_update']}, {duration(record['wall_time_s'])} in {len(record['attempts'])} attempt(s)"
        )
        return record

    def summary(self, started: float, save_root: str) -> str:
        elsewhere = self.tally["trained elsewhere"]
        return (
            f"rxf-run: {self.tally['trained']} run(s) trained, {self.tally['done already']} done already"
            + (f", {elsewhere} being trained by another process" if elsewhere else "")
            + f", in {duration(time.time() - started)}; records under {save_root}"
        )


def clear_run_dir(run_dir: str) -> None:
    """Delete what a run folder holds (its checkpoints, logs, records and a protocol's step folders) but its lock,
    its holder's note and its Slurm job: ``--force`` empties the folder of a run this process holds."""
    for name in os.listdir(run_dir):
        if name in runlock.KEPT or any(name.startswith(f".{kept}.tmp-") for kept in runlock.KEPT):
            continue  # a kept file, or one being written (write_file_atomically's temporary name)
        path = os.path.join(run_dir, name)
        if os.path.isdir(path) and not os.path.islink(path):
            shutil.rmtree(path)
        else:
            os.remove(path)
