"""One JSON record per run: what ``rxf-run`` writes and what ``rxf-report`` reads, as one typed schema.

A record is a JSON object (one file, ``<run dir>/record.json``)::

    {
      "version": 1,
      "kind": "glue" | "xnli" | "summarization" | "probe",
      "task": "RTE",             # GLUE task (paper's name); "XNLI"; cnn_dm | gigaword | reddit_tifu; the probed task
      "method": "r3f",           # std | std++ | r3f | r4f | smart | fast-r3f; none: probes of the pretrained model
      "seed": 1,
      "hparams": {"r3f_lambda": 1.0, "noise_type": "uniform", "lr": [1e-05], ...},  # the grid's keys, as run
      "metrics": {"accuracy": 88.5},   # as fairseq logs them (see below)
      "best_update": 2800,       # update of checkpoint_best.pt (by the task's metric), across every attempt
      "valid_curve": [[1000, 85.1], ...],  # [update, value] of that metric at every validated update, all attempts
      "time_to_best_s": 1234.5,  # training time until that checkpoint's validation, from the first training step
                                 # (start-up excluded), summed over the attempts before it
      "startup_s": 20.5,         # each attempt's time from its start to its first training step, summed
      "wall_time_s": 1400.0,     # whole run, every attempt
      "train_wall_s": 1200.0,    # fairseq's "done training in X seconds": the training loop with its validations
                                 # and checkpoint saves, without start-up, summed over attempts (absent if none trained)
      "attempts": [{"attempt": 1, "resumed": false, "exit": null, "wall_time_s": 600.0, "started": "..."}, ...],
                                 # one per fairseq-train process since the run's fresh start (exit null: killed);
                                 # the log of each is kept in train.log behind an "# rxf-run attempt N" header
      "tiny": false,             # true for runs made by the tests / miniature presets, never paper-scale
      "command": ["fairseq_cli.train", ...],
      "valid_accuracy": 88.9,    # xnli only: validation accuracy of the checkpoint that was tested
      "valid_loss": 3.1,         # summarization only: validation loss of that checkpoint
      "generate": [...], "rouge": [...],  # summarization only: the fairseq-generate and rxf-rouge commands
      "probe": {...},            # probe only (required): protocol, source, chain, step, cycle, finetuned_on
      "probed_checkpoint": "..." # probe only: the checkpoint whose frozen encoder was probed
    }

Metrics: GLUE and probes ``accuracy`` (MNLI: matched; ``accuracy_mm`` mismatched), ``f1`` (QQP, MRPC), ``mcc``
(CoLA), ``pearson``/``spearman``/``pearson_and_spearman`` (STS-B; the last is their mean, fairseq's), in percent (x 100),
and ``loss``; XNLI one test accuracy per language code (``en`` ... ``ur``); summarisation ``rouge1``, ``rouge2``,
``rougeL`` (F-measure x 100). A metric may be NaN or infinite (an evaluation that diverged is recorded as measured;
``rxf-report`` refuses to print it); a finite one lies in its range (0-100, correlations -100-100, a loss >= 0).

``Record.from_dict`` checks every field (its type, its range, and which kinds have it; an unknown field is an error)
and ``Record.to_dict`` gives the JSON object back; ``write_record`` and ``load_records`` go through them, so the
writer and the reader share this one schema. A field without a value (None) is not written: absent and null read
the same. Records are parsed as JSON, never evaluated from log lines. Standard library (and the catalog) only.
"""

import json
import math
import os
import time
from dataclasses import dataclass, field, fields
from typing import Any, Dict, Iterable, List, Optional, Sequence, Tuple

from rxf_repro import catalog, outputs

VERSION = 1
KINDS: Tuple[str, ...] = tuple(catalog.FAMILY_METHODS)  # one kind per rxf-run family
METHODS: Tuple[str, ...] = catalog.METHOD_ORDER
RECORD_NAME = "record.json"
STEP_RECORD_NAME = "finetune.json"  # a protocol's fine-tuning steps: not record.json, so not in Table 2
RECORD_NAMES = (RECORD_NAME, STEP_RECORD_NAME)
GLUE_TASK_NAMES: Tuple[str, ...] = tuple(catalog.TASKS.values())  # GLUE's and the demo's GLUE-shaped tasks
# The metrics a GLUE or probe record keeps from fairseq's validation line (``valid_NAME``), and MNLI's mismatched one.
GLUE_METRICS: Tuple[str, ...] = ("accuracy", "f1", "mcc", "pearson", "spearman", "pearson_and_spearman", "loss")
MISMATCHED = "accuracy_mm"
CORRELATIONS = ("mcc", "pearson", "spearman", "pearson_and_spearman")  # x 100: from -100 to 100
TASKS_OF_KIND: Dict[str, Tuple[str, ...]] = {
    "glue": GLUE_TASK_NAMES,
    "xnli": ("XNLI",),
    "summarization": tuple(catalog.SUMMARIZATION),
    "probe": GLUE_TASK_NAMES,
}
METRICS_OF_KIND: Dict[str, Tuple[str, ...]] = {
    "glue": GLUE_METRICS + (MISMATCHED,),
    "xnli": catalog.XNLI_LANGUAGES,
    "summarization": catalog.ROUGE,
    "probe": GLUE_METRICS + (MISMATCHED,),
}
ONLY_IN_KIND = {
    "valid_accuracy": "xnli",
    "valid_loss": "summarization",
    "generate": "summarization",
    "rouge": "summarization",
    "probe": "probe",
    "probed_checkpoint": "probe",
}
STARTED_FORMAT = "%Y-%m-%dT%H:%M:%S"


class RecordError(ValueError):
    """A record that is not a valid run record; read from a file, the message names the file."""


# ------------------------------------------------------------------------------------------ checks


def is_number(value: Any) -> bool:
    return isinstance(value, (int, float)) and not isinstance(value, bool)


def is_integer(value: Any) -> bool:
    return isinstance(value, int) and not isinstance(value, bool)


def is_strings(value: Any) -> bool:
    return isinstance(value, list) and all(isinstance(item, str) for item in value)


def typed(name: str, value: Any, ok: bool, expected: str) -> None:
    """A value of the wrong type: ``NAME should be EXPECTED, got VALUE``."""
    if not ok:
        raise RecordError(f"{name} should be {expected}, got {value!r}")


def ranged(name: str, value: Any, ok: bool, expected: str) -> None:
    """A value of the right type out of its range: ``NAME is VALUE, not EXPECTED``."""
    if not ok:
        raise RecordError(f"{name} is {value!r}, not {expected}")


def one_of(name: str, value: Any, allowed: Sequence[str]) -> None:
    if value not in allowed:
        raise RecordError(f"{name} {value!r} is not one of {', '.join(allowed)}")


def count(name: str, value: Any, low: int) -> None:
    """An integer ``>= low`` (a seed, an update, a step, a cycle)."""
    typed(name, value, is_integer(value), "an integer")
    ranged(name, value, value >= low, f"an integer >= {low}")


def seconds(name: str, value: Optional[float]) -> None:
    if value is not None:
        typed(name, value, is_number(value), "a number of seconds")
        ranged(name, value, math.isfinite(value) and value >= 0, "a finite number of seconds >= 0")


def score(name: str, value: Any, low: float, high: float) -> None:
    """A measured number: NaN or infinite if the evaluation diverged (kept as measured), else within its range."""
    typed(name, value, is_number(value), "a number")
    ranged(name, value, not math.isfinite(value) or low <= value <= high, f"from {low:g} to {high:g}")


def metric_range(name: str) -> Tuple[float, float]:
    if name == "loss":
        return 0.0, math.inf
    return (-100.0, 100.0) if name in CORRELATIONS else (0.0, 100.0)


def setting_value(value: Any) -> bool:
    scalar = lambda v: v is None or isinstance(v, (str, bool, int, float))  # noqa: E731
    return scalar(value) or (isinstance(value, list) and all(scalar(v) for v in value))


def unknown_fields(data: Dict[str, Any], known: Iterable[str], what: str) -> None:
    extra = sorted(set(data) - set(known))
    if extra:
        raise RecordError(
            f"unknown field {extra[0]!r} in {what} (its fields: {', '.join(known)}; see rxf_repro/records.py)"
        )


def present(data: Dict[str, Any], names: Iterable[str], what: str = "record") -> None:
    for name in names:
        if name not in data:
            raise RecordError(f"missing field {name!r}" + ("" if what == "record" else f" in {what}"))


def written(value: Any) -> Dict[str, Any]:
    """A dataclass as its JSON object: every field that has a value (None is not written)."""
    out = {}
    for f in fields(value):
        item = getattr(value, f.name)
        if item is None or not f.metadata.get("written", True):
            continue
        if isinstance(item, list) and item and hasattr(item[0], "to_dict"):
            item = [i.to_dict() for i in item]
        elif hasattr(item, "to_dict"):
            item = item.to_dict()
        out[f.name] = item
    return out


# ------------------------------------------------------------------------------------------ the schema


@dataclass
class Attempt:
    """One fairseq-train process of a run (``attempts.summary`` writes them)."""

    attempt: int  # 1, 2, ... since the run's fresh start
    resumed: bool
    exit: Optional[int]  # None: killed (no footer in the log)
    wall_time_s: float
    started: Optional[str] = None  # local time, STARTED_FORMAT

    NAMES = ("attempt", "resumed", "exit", "wall_time_s", "started")

    def __post_init__(self) -> None:
        count("attempt", self.attempt, 1)
        typed("resumed", self.resumed, isinstance(self.resumed, bool), "true or false")
        typed("exit", self.exit, self.exit is None or is_integer(self.exit), "an exit status or null (killed)")
        typed("wall_time_s", self.wall_time_s, self.wall_time_s is not None, "a number of seconds")
        seconds("wall_time_s", self.wall_time_s)
        if self.started is not None:
            typed(
                "started",
                self.started,
                isinstance(self.started, str) and _is_time(self.started),
                f"a local time as {STARTED_FORMAT}",
            )

    @classmethod
    def from_dict(cls, data: Any) -> "Attempt":
        typed("an attempt", data, isinstance(data, dict), "an object")
        unknown_fields(data, cls.NAMES, "an attempt")
        present(data, cls.NAMES[:4], "an attempt")
        return cls(**data)

    def to_dict(self) -> Dict[str, Any]:
        return {name: getattr(self, name) for name in self.NAMES}  # exit and started even when null


def _is_time(text: str) -> bool:
    try:
        time.strptime(text, STARTED_FORMAT)
    except ValueError:
        return False
    return True


@dataclass
class ProbeInfo:
    """Where a probe was taken (the ``probe`` field of a probe record): the protocol, the task fine-tuned first, the
    chain of tasks, the step along it, the cycle (retention), and what the probed encoder was last fine-tuned on."""

    protocol: str  # catalog.PROTOCOLS
    source: str
    chain: Optional[List[str]] = None
    step: Optional[int] = None  # required by degradation
    cycle: Optional[int] = None  # required by retention
    finetuned_on: Optional[str] = None  # a task; "none": the pretrained model; "pretrained": retention's first probe

    NEEDS = {"degradation": "step", "retention": "cycle"}

    def __post_init__(self) -> None:
        one_of("probe protocol", self.protocol, catalog.PROTOCOLS)
        if not isinstance(self.source, str):
            raise RecordError("a probe record needs probe.source (the task fine-tuned first)")
        one_of("probe.source", self.source, GLUE_TASK_NAMES)
        if self.chain is not None:
            typed("probe.chain", self.chain, is_strings(self.chain), "a list of tasks")
            for task in self.chain:
                one_of("a task of probe.chain", task, GLUE_TASK_NAMES)
        for name, low in (("step", 0), ("cycle", 1)):
            value = getattr(self, name)
            if name == self.NEEDS.get(self.protocol) or value is not None:
                count(f"probe.{name}", value, low)
        if self.finetuned_on is not None:
            typed("probe.finetuned_on", self.finetuned_on, isinstance(self.finetuned_on, str), "a task name")

    @classmethod
    def from_dict(cls, data: Any) -> "ProbeInfo":
        typed("probe", data, isinstance(data, dict), "an object (protocol, source, chain, step, cycle, finetuned_on)")
        unknown_fields(data, [f.name for f in fields(cls)], "probe")
        return cls(**{"protocol": None, "source": None, **data})

    def to_dict(self) -> Dict[str, Any]:
        return written(self)


def probe_info(
    protocol: str,
    chain: Sequence[str],
    step: int = 0,
    cycle: int = 1,
    *,
    finetuned_on: str,
    source: Optional[str] = None,
) -> Dict[str, Any]:
    """The ``probe`` field of a probe record, checked: ``source`` is the chain's first task unless given (the
    pretrained model's probes have no chain); step 0 and cycle 1 outside the protocols that count them."""
    if source is None and not chain:
        raise RecordError("a probe without a chain needs its source task")
    return ProbeInfo(
        protocol, source if source is not None else chain[0], list(chain), step, cycle, finetuned_on
    ).to_dict()


@dataclass
class Record:
    """One finished run; see the module's docstring for each field."""

    kind: str
    task: str
    method: str
    seed: int
    hparams: Dict[str, Any]
    metrics: Dict[str, float]
    version: int = VERSION
    tiny: bool = False
    best_update: Optional[int] = None
    valid_curve: Optional[List[List[float]]] = None
    time_to_best_s: Optional[float] = None
    startup_s: Optional[float] = None
    wall_time_s: Optional[float] = None
    train_wall_s: Optional[float] = None
    attempts: Optional[List[Attempt]] = None
    command: Optional[List[str]] = None
    valid_accuracy: Optional[float] = None
    valid_loss: Optional[float] = None
    generate: Optional[List[str]] = None
    rouge: Optional[List[str]] = None
    probe: Optional[ProbeInfo] = None
    probed_checkpoint: Optional[str] = None
    path: Optional[str] = field(default=None, compare=False, metadata={"written": False})  # the file it was read from

    REQUIRED = ("version", "kind", "task", "method", "seed", "hparams", "metrics")

    def __post_init__(self) -> None:
        typed("version", self.version, is_integer(self.version), "an integer")
        if self.version != VERSION:
            raise RecordError(f"record version {self.version} is not {VERSION}")
        one_of("kind", self.kind, KINDS)
        self.check_task()
        one_of("method", self.method, METHODS)
        if self.method == catalog.PRETRAINED and self.kind != "probe":
            raise RecordError(
                f"method {catalog.PRETRAINED} (probes of the pretrained model) is for probe records, not {self.kind}"
            )
        count("seed", self.seed, 0)
        typed("hparams", self.hparams, isinstance(self.hparams, dict), "an object")
        for key, value in self.hparams.items():
            typed(
                f"hparams[{key!r}]",
                value,
                isinstance(key, str) and setting_value(value),
                "a string, number, boolean, null or a list of them",
            )
        typed("metrics", self.metrics, isinstance(self.metrics, dict), "an object")
        for name, value in self.metrics.items():
            typed(f"metric {name!r}", value, is_number(value), "a number")
            if name not in METRICS_OF_KIND[self.kind]:
                raise RecordError(
                    f"metric {name!r} is not one that {self.kind} records have "
                    f"({', '.join(METRICS_OF_KIND[self.kind])})"
                )
            score(f"metric {name!r}", value, *metric_range(name))
        self.check_fields()

    def check_task(self) -> None:
        typed("task", self.task, isinstance(self.task, str), "a string")
        if self.kind == "xnli" and self.task != "XNLI":
            raise RecordError(f"an xnli record has task 'XNLI', not {self.task!r}")
        what = {"summarization": "summarisation dataset", "probe": "probed task"}.get(self.kind, "GLUE task")
        one_of(what, self.task, TASKS_OF_KIND[self.kind])

    def check_fields(self) -> None:
        """The optional fields: their types and ranges, and only in the kinds that have them."""
        for name, kind in ONLY_IN_KIND.items():
            if getattr(self, name) is not None and self.kind != kind:
                raise RecordError(f"{name} is a field of {kind} records, not of {self.kind} records")
        if self.kind == "probe":
            typed(
                "probe",
                self.probe,
                isinstance(self.probe, ProbeInfo),
                "an object (a probe record needs it: protocol, source, chain, step, cycle, finetuned_on)",
            )
        typed("tiny", self.tiny, isinstance(self.tiny, bool), "true or false")
        if self.best_update is not None:
            count("best_update", self.best_update, 0)
        if self.valid_curve is not None:
            typed(
                "valid_curve",
                self.valid_curve,
                isinstance(self.valid_curve, list)
                and all(
                    isinstance(p, list) and len(p) == 2 and is_integer(p[0]) and p[0] >= 0 and is_number(p[1])
                    for p in self.valid_curve
                ),
                "a list of [update, value] pairs",
            )
        for name in ("time_to_best_s", "startup_s", "wall_time_s", "train_wall_s"):
            seconds(name, getattr(self, name))
        if self.attempts is not None:
            typed(
                "attempts",
                self.attempts,
                isinstance(self.attempts, list) and all(isinstance(a, Attempt) for a in self.attempts),
                "a list of objects",
            )
        for name in ("command", "generate", "rouge"):
            if getattr(self, name) is not None:
                typed(name, getattr(self, name), is_strings(getattr(self, name)), "a command (a list of strings)")
        if self.valid_accuracy is not None:
            score("valid_accuracy", self.valid_accuracy, 0.0, 100.0)
        if self.valid_loss is not None:
            score("valid_loss", self.valid_loss, 0.0, math.inf)
        if self.probed_checkpoint is not None:
            typed("probed_checkpoint", self.probed_checkpoint, isinstance(self.probed_checkpoint, str), "a path")

    @classmethod
    def from_dict(cls, data: Any, where: str = "record") -> "Record":
        """The record of a JSON object, every field checked; RecordError ``WHERE: what is wrong`` otherwise."""
        try:
            if not isinstance(data, dict):
                raise RecordError("a record is a JSON object")
            unknown_fields(data, [f.name for f in fields(cls) if f.metadata.get("written", True)], "a record")
            present(data, cls.REQUIRED)
            values = dict(data)
            if values.get("attempts") is not None:
                typed("attempts", values["attempts"], isinstance(values["attempts"], list), "a list of objects")
                values["attempts"] = [Attempt.from_dict(a) for a in values["attempts"]]
            if values.get("probe") is not None:
                values["probe"] = ProbeInfo.from_dict(values["probe"])
            return cls(**values)
        except RecordError as error:
            raise RecordError(f"{where}: {error}") from None

    def to_dict(self) -> Dict[str, Any]:
        """The JSON object ``record.json`` holds (without ``path``)."""
        return written(self)


# ------------------------------------------------------------------------------------------ files


def write_record(path: str, record: Dict[str, Any]) -> str:
    """Check every field (``Record.from_dict``) and write atomically (a crashed writer never leaves half a record)."""
    checked = Record.from_dict(dict(record, version=record.get("version", VERSION)), path)
    outputs.write_file_atomically(path, json.dumps(checked.to_dict(), indent=2, sort_keys=True) + "\n")
    return path


def find_record_files(roots: Iterable[str]) -> List[str]:
    """Every ``record.json`` under the given folders (or the files themselves), sorted."""
    found = []
    for root in roots:
        if os.path.isfile(root):
            found.append(root)
            continue
        if not os.path.isdir(root):
            raise RecordError(f"{root}: no such file or folder")
        for folder, _, files in os.walk(root):
            found.extend(os.path.join(folder, f) for f in files if f == RECORD_NAME)
    return sorted(found)


def read_records(roots: Iterable[str]) -> List[Record]:
    """Every record under ``roots``, checked, each with the ``path`` it was read from."""
    found = []
    for path in find_record_files(roots):
        try:
            with open(path, encoding="utf-8") as f:
                data = json.load(f)
        except json.JSONDecodeError as error:
            raise RecordError(f"{path}:{error.lineno}: not JSON ({error.msg})") from None
        except UnicodeDecodeError as error:
            raise RecordError(
                f"{path}: not UTF-8 text (byte {error.object[error.start]:#04x} at offset "
                f"{error.start}); a record is UTF-8 JSON as the run scripts write it: rewrite it or "
                "remove it"
            ) from None
        except OSError as error:
            raise RecordError(f"{path}: cannot read it ({error.strerror})") from None
        record = Record.from_dict(data, path)
        record.path = path
        found.append(record)
    return found


def load_records(roots: Iterable[str]) -> List[Dict[str, Any]]:
    """``read_records`` as JSON objects, each with its ``path``."""
    return [dict(record.to_dict(), path=record.path) for record in read_records(roots)]
