"""One JSON record per run: what the run scripts write and what ``rxf-report`` reads.

A record is a JSON object (one file, ``<run dir>/record.json``)::

    {
      "version": 1,
      "kind": "glue" | "xnli" | "summarization" | "probe",
      "task": "RTE",             # GLUE task; "XNLI"; cnn_dm | gigaword | reddit_tifu; the probed task
      "method": "r3f",           # std | std++ | r3f | r4f | smart | fast-r3f; none: probes of the pretrained model
      "seed": 1,
      "hparams": {"r3f_lambda": 1.0, "noise_type": "uniform", "lr": 1e-05, ...},
      "metrics": {"accuracy": 88.5},   # in percent, as fairseq logs them (see below)
      "best_update": 2800,       # update of checkpoint_best.pt (by the task's metric), across every attempt
      "time_to_best_s": 1234.5,  # wall time until that checkpoint's validation, summed over the attempts before it
      "wall_time_s": 1400.0,     # whole run, every attempt
      "train_wall_s": 1200.0,    # fairseq's "done training in X seconds": the training loop with its validations
                                 # and checkpoint saves, without start-up, summed over attempts (null if none trained)
      "attempts": [{"attempt": 1, "resumed": false, "exit": null, "wall_time_s": 600.0, "started": "..."}, ...],
                                 # one per fairseq-train process since the run's fresh start (exit null: killed);
                                 # the log of each is kept in train.log behind an "# rxf-run attempt N" header
      "probe": {...},            # kind == "probe" only: protocol, source, chain, step, cycle
      "tiny": false,             # true for runs made by the tests / miniature presets, never paper-scale
      "command": ["fairseq-train", ...]
    }

Metrics, all in percent: GLUE ``accuracy`` (MNLI: matched; ``accuracy_mm`` mismatched), ``f1`` (QQP, MRPC),
``mcc`` (CoLA), ``pearson``/``spearman`` (STS-B); XNLI one accuracy per language code (``en`` ... ``ur``);
summarisation ``rouge1``, ``rouge2``, ``rougeL`` (F-measure x 100); probes ``accuracy`` (and the task's metric).
Records are parsed as JSON and validated, never evaluated from log lines.
"""

import json
import os
import tempfile
from typing import Any, Dict, Iterable, List

VERSION = 1
KINDS = ("glue", "xnli", "summarization", "probe")
METHODS = ("std", "std++", "r3f", "r4f", "smart", "fast-r3f", "none")  # none: a probe of the pretrained model
REQUIRED = {"version": int, "kind": str, "task": str, "method": str, "seed": int, "hparams": dict, "metrics": dict}
RECORD_NAME = "record.json"


class RecordError(ValueError):
    """A record file that is not a valid run record; the message names the file."""


def validate(record: Dict[str, Any], where: str = "record") -> Dict[str, Any]:
    for key, kind in REQUIRED.items():
        if key not in record:
            raise RecordError(f"{where}: missing field {key!r}")
        if not isinstance(record[key], kind) or (kind is int and isinstance(record[key], bool)):
            raise RecordError(f"{where}: field {key!r} should be {kind.__name__}, got {record[key]!r}")
    if record["version"] != VERSION:
        raise RecordError(f"{where}: record version {record['version']} is not {VERSION}")
    if record["kind"] not in KINDS:
        raise RecordError(f"{where}: kind {record['kind']!r} is not one of {KINDS}")
    if record["method"] not in METHODS:
        raise RecordError(f"{where}: method {record['method']!r} is not one of {METHODS}")
    for name, value in record["metrics"].items():
        if not isinstance(value, (int, float)) or isinstance(value, bool):
            raise RecordError(f"{where}: metric {name!r} should be a number, got {value!r}")
    if "attempts" in record and not (isinstance(record["attempts"], list) and
                                     all(isinstance(a, dict) for a in record["attempts"])):
        raise RecordError(f"{where}: 'attempts' should be a list of objects, got {record['attempts']!r}")
    if record["kind"] == "probe" and not isinstance(record.get("probe"), dict):
        raise RecordError(f"{where}: a probe record needs a 'probe' object (protocol, source, step, cycle)")
    return record


def write_record(path: str, record: Dict[str, Any]) -> str:
    """Validate and write atomically (a crashed writer never leaves half a record)."""
    record = dict(record, version=record.get("version", VERSION))
    validate(record, path)
    folder = os.path.dirname(os.path.abspath(path))
    os.makedirs(folder, exist_ok=True)
    fd, tmp = tempfile.mkstemp(prefix=".record-", dir=folder)
    try:
        with os.fdopen(fd, "w", encoding="utf-8") as f:
            json.dump(record, f, indent=2, sort_keys=True)
            f.write("\n")
        os.replace(tmp, path)
    finally:
        if os.path.exists(tmp):
            os.remove(tmp)
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


def load_records(roots: Iterable[str]) -> List[Dict[str, Any]]:
    records = []
    for path in find_record_files(roots):
        try:
            with open(path, encoding="utf-8") as f:
                record = json.load(f)
        except json.JSONDecodeError as error:
            raise RecordError(f"{path}:{error.lineno}: not JSON ({error.msg})") from None
        except UnicodeDecodeError as error:
            raise RecordError(f"{path}: not UTF-8 text (byte {error.object[error.start]:#04x} at offset "
                              f"{error.start}); a record is UTF-8 JSON as the run scripts write it: rewrite it or "
                              "remove it") from None
        except OSError as error:
            raise RecordError(f"{path}: cannot read it ({error.strerror})") from None
        if not isinstance(record, dict):
            raise RecordError(f"{path}: a record is a JSON object")
        records.append(dict(validate(record, path), path=path))
    return records
