"""One JSON record per run (``<run dir>/record.json``): what ``rxf-run`` writes and ``rxf-report`` reads, one schema.

Metrics are x 100 as fairseq logs them; NaN or infinite (a diverged evaluation) is kept as measured, and
``rxf-report`` refuses to print it. Writer and reader both check every field (``Record.from_dict``); None is not
written: absent and null read the same.
"""

import json
import math
import os
import time
from dataclasses import asdict, dataclass, field, fields
from typing import Any, Dict, Iterable, List, Optional, Sequence, Tuple

from rxf_repro import catalog, outputs
from rxf_repro.cli import UserError

VERSION = 1
KINDS: Tuple[str, ...] = tuple(catalog.FAMILY_METHODS)  # one kind per rxf-run family
RECORD_NAME = "record.json"
STEP_RECORD_NAME = "finetune.json"  # a protocol's fine-tuning steps: not record.json, so not in Table 2
RECORD_NAMES = (RECORD_NAME, STEP_RECORD_NAME)
GLUE_TASK_NAMES: Tuple[str, ...] = tuple(catalog.TASKS.values())  # GLUE's and the demo's GLUE-shaped tasks
# The metrics a GLUE or probe record keeps from fairseq's validation line (``valid_NAME``), and MNLI's mismatched one.
GLUE_METRICS: Tuple[str, ...] = ("accuracy", "f1", "mcc", "pearson", "spearman", "pearson_and_spearman", "loss")
CORRELATIONS = ("mcc", "pearson", "spearman", "pearson_and_spearman")  # x 100: from -100 to 100
TASKS_OF_KIND: Dict[str, Tuple[str, ...]] = {
    "glue": GLUE_TASK_NAMES,
    "xnli": ("XNLI",),
    "summarization": tuple(catalog.SUMMARIZATION),
    "probe": GLUE_TASK_NAMES,
}
METRICS_OF_KIND: Dict[str, Tuple[str, ...]] = {
    "glue": GLUE_METRICS + ("accuracy_mm",),
    "xnli": catalog.XNLI_LANGUAGES,
    "summarization": catalog.ROUGE,
    "probe": GLUE_METRICS + ("accuracy_mm",),
}
STARTED_FORMAT = "%Y-%m-%dT%H:%M:%S"


def is_number(value: Any) -> bool:
    return isinstance(value, (int, float)) and not isinstance(value, bool)


def is_integer(value: Any) -> bool:
    return isinstance(value, int) and not isinstance(value, bool)


def is_strings(value: Any) -> bool:
    return isinstance(value, list) and all(isinstance(item, str) for item in value)


def typed(name: str, value: Any, ok: bool, expected: str) -> None:
    if not ok:
        raise UserError(f"{name} should be {expected}, got {value!r}")


def ranged(name: str, value: Any, ok: bool, expected: str) -> None:
    if not ok:
        raise UserError(f"{name} is {value!r}, not {expected}")


def one_of(name: str, value: Any, allowed: Sequence[str]) -> None:
    if value not in allowed:
        raise UserError(f"{name} {value!r} is not one of {', '.join(allowed)}")


def count(name: str, value: Any, low: int) -> None:
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


def is_curve_point(value: Any) -> bool:
    return (
        isinstance(value, list) and len(value) == 2 and is_integer(value[0]) and value[0] >= 0 and is_number(value[1])
    )


def metric_range(name: str) -> Tuple[float, float]:
    return (0.0, math.inf) if name == "loss" else (-100.0, 100.0) if name in CORRELATIONS else (0.0, 100.0)


def setting_value(value: Any) -> bool:
    scalar = lambda v: v is None or isinstance(v, (str, bool, int, float))  # noqa: E731
    return scalar(value) or (isinstance(value, list) and all(scalar(v) for v in value))


def known_fields(data: Any, cls: type, what: str, required: Sequence[str] = ()) -> None:
    """``data`` is an object with only ``cls``'s written fields, and every one of ``required``."""
    typed(what, data, isinstance(data, dict), "an object")
    known = [f.name for f in fields(cls) if f.name != "path"]
    extra = sorted(set(data) - set(known))
    if extra:
        raise UserError(
            f"unknown field {extra[0]!r} in {what} (its fields: {', '.join(known)}; see rxf_repro/records.py)"
        )
    for name in required:
        if name not in data:
            raise UserError(f"missing field {name!r}" + ("" if what == "a record" else f" in {what}"))


def without_none(data: Dict[str, Any]) -> Dict[str, Any]:
    return {k: v for k, v in data.items() if v is not None}


def only(kind: str) -> Any:
    """An optional field of one kind of record."""
    return field(default=None, metadata={"only": kind})


@dataclass
class Attempt:
    """One fairseq-train process of a run (``attempts.summary``), logged in train.log behind its own header."""

    attempt: int  # 1, 2, ... since the run's fresh start
    resumed: bool
    exit: Optional[int]  # None: killed (no footer in the log)
    wall_time_s: float
    started: Optional[str] = None  # local time, STARTED_FORMAT

    def __post_init__(self) -> None:
        count("attempt", self.attempt, 1)
        typed("resumed", self.resumed, isinstance(self.resumed, bool), "true or false")
        typed("exit", self.exit, self.exit is None or is_integer(self.exit), "an exit status or null (killed)")
        typed("wall_time_s", self.wall_time_s, self.wall_time_s is not None, "a number of seconds")
        seconds("wall_time_s", self.wall_time_s)
        if self.started is not None:
            typed("started", self.started, _is_time(self.started), f"a local time as {STARTED_FORMAT}")

    @classmethod
    def from_dict(cls, data: Any) -> "Attempt":
        known_fields(data, cls, "an attempt", ("attempt", "resumed", "exit", "wall_time_s"))
        return cls(**data)


def _is_time(text: Any) -> bool:
    try:
        time.strptime(text, STARTED_FORMAT)
    except (TypeError, ValueError):
        return False
    return True


@dataclass
class ProbeInfo:
    """Where a probe was taken (the ``probe`` field of a probe record)."""

    protocol: str  # catalog.PROTOCOLS
    source: str  # the task fine-tuned first
    chain: Optional[List[str]] = None
    step: Optional[int] = None  # the step along the chain; required by degradation
    cycle: Optional[int] = None  # required by retention
    finetuned_on: Optional[str] = None  # a task; "none": the pretrained model; "pretrained": retention's first probe

    NEEDS = {"degradation": "step", "retention": "cycle"}

    def __post_init__(self) -> None:
        one_of("probe protocol", self.protocol, catalog.PROTOCOLS)
        if not isinstance(self.source, str):
            raise UserError("a probe record needs probe.source (the task fine-tuned first)")
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
        known_fields(data, cls, "probe")
        return cls(**{"protocol": None, "source": None, **data})

    def to_dict(self) -> Dict[str, Any]:
        return without_none(asdict(self))


def probe_info(
    protocol: str, chain: Sequence[str], step: int = 0, cycle: int = 1, *, finetuned_on: str, source: str = ""
) -> Dict[str, Any]:
    """The ``probe`` field of a probe record, checked: ``source`` is the chain's first task unless given (the
    pretrained model's probes have no chain)."""
    return ProbeInfo(protocol, source or next(iter(chain), None), list(chain), step, cycle, finetuned_on).to_dict()


@dataclass
class Record:
    """One finished run: the numbers of its best validation checkpoint (by the task's metric) over every attempt."""

    kind: str  # KINDS
    task: str  # the paper's GLUE task name; "XNLI"; cnn_dm | gigaword | reddit_tifu; the probed task
    method: str  # catalog.METHOD_ORDER; none: probes of the pretrained model
    seed: int
    hparams: Dict[str, Any]  # the grid's keys, as run
    metrics: Dict[str, float]  # as fairseq logs them (see the module's docstring)
    version: int = VERSION
    tiny: bool = False  # made by the tests or miniature presets, never paper-scale
    best_update: Optional[int] = None  # the update of checkpoint_best.pt
    valid_curve: Optional[List[List[float]]] = None  # [update, value] of that metric at every validation
    time_to_best_s: Optional[float] = None  # training time until that checkpoint's validation (start-up excluded)
    startup_s: Optional[float] = None  # each attempt's time from its start to its first training step
    wall_time_s: Optional[float] = None  # the whole run
    train_wall_s: Optional[float] = None  # fairseq's "done training in X seconds" (absent if none trained)
    attempts: Optional[List[Attempt]] = None  # one per fairseq-train process since the run's fresh start
    command: Optional[List[str]] = None
    # the fields of one kind only
    valid_accuracy: Optional[float] = only("xnli")  # validation accuracy of the checkpoint that was tested
    valid_loss: Optional[float] = only("summarization")  # validation loss of that checkpoint
    generate: Optional[List[str]] = only("summarization")  # the fairseq-generate command
    rouge: Optional[List[str]] = only("summarization")  # the rxf-rouge command
    probe: Optional[ProbeInfo] = only("probe")  # required there
    probed_checkpoint: Optional[str] = only("probe")  # the checkpoint whose frozen encoder was probed
    path: Optional[str] = field(default=None, compare=False)  # the file it was read from; not written

    def __post_init__(self) -> None:
        typed("version", self.version, is_integer(self.version), "an integer")
        if self.version != VERSION:
            raise UserError(f"record version {self.version} is not {VERSION}")
        one_of("kind", self.kind, KINDS)
        typed("task", self.task, isinstance(self.task, str), "a string")
        what = {"xnli": "xnli task", "summarization": "summarisation dataset", "probe": "probed task"}
        one_of(what.get(self.kind, "GLUE task"), self.task, TASKS_OF_KIND[self.kind])
        one_of("method", self.method, catalog.METHOD_ORDER)
        if self.method == catalog.PRETRAINED and self.kind != "probe":
            raise UserError(
                f"method {catalog.PRETRAINED} (probes of the pretrained model) is for probe records, not {self.kind}"
            )
        count("seed", self.seed, 0)
        typed("hparams", self.hparams, isinstance(self.hparams, dict), "an object")
        for key, value in self.hparams.items():
            ok = isinstance(key, str) and setting_value(value)
            typed(f"hparams[{key!r}]", value, ok, "a string, number, boolean, null or a list of them")
        typed("metrics", self.metrics, isinstance(self.metrics, dict), "an object")
        for name, value in self.metrics.items():
            typed(f"metric {name!r}", value, is_number(value), "a number")
            if name not in METRICS_OF_KIND[self.kind]:
                raise UserError(
                    f"metric {name!r} is not one that {self.kind} records have "
                    f"({', '.join(METRICS_OF_KIND[self.kind])})"
                )
            score(f"metric {name!r}", value, *metric_range(name))
        for f in fields(self):
            kind = f.metadata.get("only")
            if kind and getattr(self, f.name) is not None and self.kind != kind:
                raise UserError(f"{f.name} is a field of {kind} records, not of {self.kind} records")
        needs = "an object (a probe record needs it: protocol, source, chain, step, cycle, finetuned_on)"
        typed("probe", self.probe, self.kind != "probe" or isinstance(self.probe, ProbeInfo), needs)
        typed("tiny", self.tiny, isinstance(self.tiny, bool), "true or false")
        if self.best_update is not None:
            count("best_update", self.best_update, 0)
        if self.valid_curve is not None:
            ok = isinstance(self.valid_curve, list) and all(is_curve_point(p) for p in self.valid_curve)
            typed("valid_curve", self.valid_curve, ok, "a list of [update, value] pairs")
        for name in ("time_to_best_s", "startup_s", "wall_time_s", "train_wall_s"):
            seconds(name, getattr(self, name))
        for name in ("command", "generate", "rouge"):
            if getattr(self, name) is not None:
                typed(name, getattr(self, name), is_strings(getattr(self, name)), "a command (a list of strings)")
        for name, high in (("valid_accuracy", 100.0), ("valid_loss", math.inf)):
            if getattr(self, name) is not None:
                score(name, getattr(self, name), 0.0, high)
        if self.probed_checkpoint is not None:
            typed("probed_checkpoint", self.probed_checkpoint, isinstance(self.probed_checkpoint, str), "a path")

    @classmethod
    def from_dict(cls, data: Any, where: str = "record") -> "Record":
        """The record of a JSON object, every field checked; UserError ``WHERE: what is wrong`` otherwise."""
        try:
            known_fields(data, cls, "a record", ("version", "kind", "task", "method", "seed", "hparams", "metrics"))
            values = dict(data)
            if values.get("attempts") is not None:
                typed("attempts", values["attempts"], isinstance(values["attempts"], list), "a list of objects")
                values["attempts"] = [Attempt.from_dict(a) for a in values["attempts"]]
            if values.get("probe") is not None:
                values["probe"] = ProbeInfo.from_dict(values["probe"])
            return cls(**values)
        except UserError as error:
            raise UserError(f"{where}: {error}") from None

    def to_dict(self) -> Dict[str, Any]:
        """The JSON object ``record.json`` holds (without ``path``; an attempt keeps its null exit and start)."""
        data = without_none(asdict(self))
        data.pop("path", None)
        if self.probe is not None:
            data["probe"] = self.probe.to_dict()
        return data


def write_record(path: str, record: Dict[str, Any]) -> str:
    """Check every field (``Record.from_dict``) and write atomically (a crashed writer never leaves half a record)."""
    checked = Record.from_dict(dict(record, version=record.get("version", VERSION)), path)
    outputs.write_file_atomically(path, json.dumps(checked.to_dict(), indent=2, sort_keys=True) + "\n")
    return path


def read_records(roots: Iterable[str]) -> List[Record]:
    """Every ``record.json`` under ``roots`` (folders, or the files themselves), checked, sorted by path."""
    paths = []
    for root in roots:
        if os.path.isfile(root):
            paths.append(root)
        elif not os.path.isdir(root):
            raise UserError(f"{root}: no such file or folder")
        for folder, _, files in os.walk(root):  # nothing for a file
            paths.extend(os.path.join(folder, f) for f in files if f == RECORD_NAME)
    found = []
    for path in sorted(paths):
        try:
            with open(path, encoding="utf-8") as f:
                data = json.load(f)
        except json.JSONDecodeError as error:
            raise UserError(f"{path}:{error.lineno}: not JSON ({error.msg})") from None
        except UnicodeDecodeError as error:
            raise UserError(
                f"{path}: not UTF-8 text (byte {error.object[error.start]:#04x} at offset {error.start}); a record "
                "is UTF-8 JSON as the run scripts write it: rewrite it or remove it"
            ) from None
        except OSError as error:
            raise UserError(f"{path}: cannot read it ({error.strerror})") from None
        record = Record.from_dict(data, path)
        record.path = path
        found.append(record)
    return found
