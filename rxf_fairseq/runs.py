"""The reproduction runs behind ``run_scripts/*.sh``: configs -> fairseq commands -> one record per run.

``configs/{glue,xnli,summarization}/NAME.yaml`` are fairseq-hydra-train configs (the paper's Appendix A.2);
``method/*.yaml`` in the same folder select the method, and the R3F/R4F/SMART method files carry the
paper's search grid as ``hydra.sweeper.params``. This module composes exactly those files with Hydra (the
same composition ``fairseq-hydra-train --config-dir configs/glue --config-name rte method=r4f`` does),
turns the result into a ``fairseq-train`` command line, runs it once per (grid setting, seed), finds the
best validation checkpoint, evaluates it (XNLI: the 15 test languages; summarisation: generation with
the dataset's decoding settings and rxf-rouge), and writes ``record.json`` (``rxf_fairseq/records.py``).

Run folders: ``SAVE_ROOT/FAMILY/TASK/METHOD/SETTING/seedN``; a run whose record exists is skipped (so an
interrupted sweep is resumed by running the same command again; ``--force`` re-runs), and a run folder
with a ``checkpoint_last.pt`` but no record continues from it.
"""

import argparse
import itertools
import json
import os
import re
import shlex
import subprocess
import sys
import time
from typing import Any, Dict, Iterator, List, Optional, Sequence, Set, Tuple

from rxf_fairseq import records

REPO = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))
CONFIG_DIR = os.path.join(REPO, "configs")
USER_DIR = os.path.dirname(os.path.abspath(__file__))

GLUE_TASKS = {"mnli": "MNLI", "qnli": "QNLI", "qqp": "QQP", "sst_2": "SST-2", "rte": "RTE", "mrpc": "MRPC",
              "cola": "CoLA", "sts_b": "STS-B"}
XNLI_LANGUAGES = ("en", "fr", "es", "de", "el", "bg", "ru", "tr", "ar", "vi", "th", "zh", "hi", "sw", "ur")
SUMMARIZATION = ("cnn_dm", "gigaword", "reddit_tifu")
METHODS = {"glue": ("std", "std++", "r3f", "r4f", "fast-r3f", "smart"), "xnli": ("std", "r3f", "r4f"),
           "summarization": ("std", "r3f")}
# Standard++: "longer fine-tuning" (Zhang et al., 2020); see configs/glue/method/std++.yaml.
UPDATE_FACTOR = {"std++": 2}
# config section -> the fairseq-train flag its ``_name`` becomes
NAME_FLAGS = {"task": "--task", "model": "--arch", "criterion": "--criterion", "optimizer": "--optimizer",
              "lr_scheduler": "--lr-scheduler"}
PROBE_CHAIN = ("sst_2", "qnli", "qqp", "rte")  # Section 4.2/4.3: SST-2 -> QNLI -> QQP -> RTE
GENERALISATION_PROBES = ("mnli", "qnli", "qqp", "rte", "mrpc", "cola")  # Section 4.1
STEP_RECORD = "finetune.json"  # a protocol's fine-tuning steps: not record.json, so not in Table 2
TRAIN_SECTIONS = ("common", "distributed_training", "dataset", "optimization", "checkpoint", "task", "model",
                  "criterion", "optimizer", "lr_scheduler")


class RunError(Exception):
    """A run that cannot be set up or that failed; the message says which and where its log is."""


def log(message: str) -> None:
    print(message, file=sys.stderr, flush=True)


# ------------------------------------------------------------------------------------------ configs

def compose(family: str, name: str, method: str, overrides: Sequence[str] = (),
            config_dir: str = CONFIG_DIR) -> Tuple[Dict[str, Any], Dict[str, List[str]]]:
    """(config, search grid) for ``configs/FAMILY/NAME.yaml`` with ``method=METHOD`` and Hydra overrides,
    composed as fairseq-hydra-train composes them."""
    from hydra import compose as hydra_compose, initialize_config_dir
    from hydra.core.global_hydra import GlobalHydra
    from omegaconf import OmegaConf

    folder = os.path.join(os.path.abspath(config_dir), family)
    if not os.path.isfile(os.path.join(folder, f"{name}.yaml")):
        raise RunError(f"no config {os.path.join(folder, name + '.yaml')}")
    if not os.path.isfile(os.path.join(folder, "method", f"{method}.yaml")):
        known = sorted(f[:-5] for f in os.listdir(os.path.join(folder, "method")) if f.endswith(".yaml"))
        raise RunError(f"method {method!r} has no config in {folder}/method (known: {', '.join(known)})")
    import logging

    from hydra.version import VersionBase

    logging.getLogger("hydra").setLevel(logging.WARNING)
    GlobalHydra.instance().clear()
    # ``version_base=None`` sets a process-wide Hydra version that fairseq's own (1.1-style) config code,
    # e.g. ``convert_namespace_to_omegaconf``, refuses afterwards: restore it
    version_base = VersionBase.instance().version_base
    try:
        with initialize_config_dir(config_dir=folder, version_base=None):
            cfg = hydra_compose(config_name=name, overrides=[f"method={method}", *overrides],
                                return_hydra_config=True)
    except Exception as error:  # hydra's override grammar and merge errors
        raise RunError(f"configs/{family}/{name}.yaml with {list(overrides)}: {error}") from None
    finally:
        GlobalHydra.instance().clear()
        VersionBase.instance().version_base = version_base
    params = cfg.hydra.sweeper.get("params") or {}
    grid = {key: [v.strip() for v in str(values).split(",")] for key, values in params.items()}
    container = OmegaConf.to_container(cfg, resolve=False)
    container.pop("hydra", None)
    return container, grid


def hydra_quote(path: str) -> str:
    """A path as a quoted Hydra override value: run folders hold '=' and ',' (``r3f_lambda=0.5,noise_type=...``),
    which Hydra's override grammar would otherwise parse."""
    # inside quotes Hydra un-escapes backslashes only before a quote or the closing quote: double those
    return "'" + re.sub(r"(\\+)(?='|$)", r"\1\1", path).replace("'", "\\'") + "'"


def settings(grid: Dict[str, List[str]], sweep: bool) -> List[Dict[str, str]]:
    """Every combination of the grid (``--sweep``), or the single setting the config holds."""
    if not sweep or not grid:
        return [{}]
    keys = sorted(grid)
    return [dict(zip(keys, values)) for values in itertools.product(*(grid[k] for k in keys))]


def lookup(cfg: Dict[str, Any], dotted: str) -> Any:
    node: Any = cfg
    for part in dotted.split("."):
        node = node.get(part) if isinstance(node, dict) else None
    return node


def scale_updates(cfg: Dict[str, Any], factor: int) -> None:
    """Standard++'s longer fine-tuning: max updates, the decay's length and the 6% warmup, times ``factor``."""
    for section, key in (("optimization", "max_update"), ("lr_scheduler", "total_num_update"),
                         ("lr_scheduler", "warmup_updates")):
        if cfg.get(section, {}).get(key) is not None:
            cfg[section][key] = int(cfg[section][key]) * factor


def _value(value: Any) -> List[str]:
    if isinstance(value, list):
        return [str(v) for v in value]
    return [str(value)]


def train_command(cfg: Dict[str, Any]) -> List[str]:
    """The fairseq-train arguments for a composed config (``generation:`` is for fairseq-generate)."""
    missing = [f"{s}.{k}" for s in TRAIN_SECTIONS for k, v in (cfg.get(s) or {}).items() if v == "???"]
    if missing:
        raise RunError(f"required value(s) not given: {', '.join(missing)}")
    argv = [str(cfg["task"]["data"])]
    seen: Dict[str, List[str]] = {}
    for section in TRAIN_SECTIONS:
        for key, value in (cfg.get(section) or {}).items():
            if section == "task" and key == "data":
                continue
            flag = NAME_FLAGS[section] if key == "_name" else "--" + key.replace("_", "-")
            if value is None or value is False:
                continue
            values = [] if value is True else _value(value)
            if flag in seen:
                if seen[flag] != values:  # e.g. task.max_positions vs model.max_positions
                    raise RunError(f"{flag} is set twice in the config, to {seen[flag]} and {values}")
                continue
            seen[flag] = values
            argv += [flag, *values]
    return argv


def check_overrides(overrides: Sequence[str], flag: str = "--set") -> None:
    """Every ``--set KEY=VALUE`` must name a section of the config: anything else would be dropped silently."""
    sections = TRAIN_SECTIONS + ("generation",)
    for item in overrides:
        key = item.lstrip("+~").split("=", 1)[0]
        if "=" not in item and not item.startswith("~"):
            raise RunError(f"{flag} {item}: expected KEY=VALUE, e.g. criterion.r3f_lambda=0.5")
        if key.split(".")[0] not in sections or "." not in key:
            raise RunError(f"{flag} {item}: {key!r} is not SECTION.KEY with SECTION one of {', '.join(sections)}")


_CHECKED: Set[Tuple[str, ...]] = set()  # command lines fairseq has accepted (a sweep repeats them per seed)


def check_with_fairseq(argv: Sequence[str]) -> None:
    """Parse a fairseq-train command line with fairseq's own parser before anything runs, so a misspelt
    ``--set`` key, a value of the wrong type or a bad ``-- FAIRSEQ_ARGS`` fails now, not hours into a sweep."""
    key = tuple(argv)
    if key in _CHECKED:
        return
    import contextlib
    import io

    from fairseq import options

    message = io.StringIO()
    try:
        with contextlib.redirect_stderr(message):
            options.parse_args_and_arch(options.get_training_parser(), list(argv))
    except SystemExit:
        error = message.getvalue().strip().splitlines()[-1:] or ["invalid arguments"]
        raise RunError(f"fairseq-train would refuse this command ({error[0]}); check --set and the arguments "
                       f"after --: {shlex.join(argv)}") from None
    _CHECKED.add(key)


def generate_flags(cfg: Dict[str, Any]) -> List[str]:
    argv = []
    for key, value in (cfg.get("generation") or {}).items():
        if value is not None and value is not False:
            argv += ["--" + key.replace("_", "-")] + ([] if value is True else _value(value))
    return argv


# ------------------------------------------------------------------------------------- running

def fairseq_tool(tool: str) -> List[str]:
    return [sys.executable, "-m", f"fairseq_cli.{tool}"]


def stream(command: List[str], log_path: str) -> Tuple[int, List[Tuple[float, str]]]:
    """Run ``command`` with its output in ``log_path``; returns (exit code, (seconds since start, line))
    for every line, so the wall time at which each validation was logged is known."""
    started = time.time()
    lines: List[Tuple[float, str]] = []
    with open(log_path, "w") as logf:
        logf.write("# " + shlex.join(command) + "\n")
        proc = subprocess.Popen(command, stdout=subprocess.PIPE, stderr=subprocess.STDOUT, text=True,
                                env=dict(os.environ, PYTHONUNBUFFERED="1"))
        assert proc.stdout is not None
        for line in proc.stdout:
            logf.write(line)
            logf.flush()
            lines.append((time.time() - started, line.rstrip("\n")))
        code = proc.wait()
    return code, lines


def json_log(lines: Sequence[Tuple[float, str]], tag: str) -> List[Dict[str, Any]]:
    """fairseq's ``--log-format json`` records of one tag, each with ``_elapsed`` (seconds since start)."""
    marker = f"| {tag} | "
    out = []
    for elapsed, line in lines:
        if marker in line:
            try:
                out.append(dict(json.loads(line.split(marker, 1)[1]), _elapsed=elapsed))
            except json.JSONDecodeError:
                continue
    return out


def best_validation(lines: Sequence[Tuple[float, str]], metric: str, maximize: bool) -> Dict[str, Any]:
    """The validation fairseq saved as checkpoint_best (the last one reaching the best value, since
    fairseq overwrites checkpoint_best on ties)."""
    valid = [r for r in json_log(lines, "valid") if f"valid_{metric}" in r]
    if not valid:
        raise RunError(f"no validation with valid_{metric} in the log")
    sign = 1.0 if maximize else -1.0
    best = max(sign * float(r[f"valid_{metric}"]) for r in valid)
    return [r for r in valid if sign * float(r[f"valid_{metric}"]) == best][-1]


def timings(lines: Sequence[Tuple[float, str]], best: Dict[str, Any], started: float) -> Dict[str, Any]:
    """The record's times: to the best checkpoint (the paper's Figure 1), the whole process, and fairseq's own
    "done training in X seconds" (the training loop with its validations and saves, without start-up)."""
    train_wall = None
    for _, line in lines:
        found = re.search(r"done training in ([0-9.]+) seconds", line)
        if found:
            train_wall = float(found.group(1))
    return {"time_to_best_s": round(best["_elapsed"], 2), "wall_time_s": round(time.time() - started, 2),
            "train_wall_s": train_wall}


def glue_metrics(lines: Sequence[Tuple[float, str]], best: Dict[str, Any]) -> Dict[str, float]:
    metrics = {}
    for name in ("accuracy", "f1", "mcc", "pearson", "spearman", "loss"):
        if f"valid_{name}" in best:
            metrics[name] = float(best[f"valid_{name}"])
    mismatched = [r for r in json_log(lines, "valid1") if r.get("valid1_num_updates") == best.get("valid_num_updates")]
    if mismatched and "valid1_accuracy" in mismatched[-1]:  # MNLI: valid1 = dev_mismatched
        metrics["accuracy_mm"] = float(mismatched[-1]["valid1_accuracy"])
    return metrics


class Runner:
    """Options shared by the three families; one ``run_*`` method per family."""

    def __init__(self, args: argparse.Namespace):
        self.args = args

    # -- command construction
    def base_overrides(self, data: str, checkpoint: str, user: Optional[Sequence[str]] = None) -> List[str]:
        """The overrides every run gets, then the user's (``--set``; ``user`` replaces them for probe steps)."""
        a = self.args
        over = [f"task.data={hydra_quote(data)}", f"checkpoint.restore_file={hydra_quote(checkpoint)}",
                f"common.user_dir={hydra_quote(USER_DIR)}"]
        if a.cpu:
            over += ["common.cpu=true", "common.fp16=false"]
        elif not a.fp16:
            over += ["common.fp16=false"]
        # ``++``: set the key whether or not the YAML names it (fairseq-hydra-train knows every key
        # through fairseq's schema; a plain compose knows only the keys in the files)
        user = list(a.set or []) if user is None else list(user)
        return ["++" + o for o in over] + [o if o[:1] in "+~" else "++" + o for o in user]

    def check_inputs(self, data: str, expect: str, made_by: str) -> None:
        """Before a real run: the data and the pretrained checkpoint exist (a typo would fail minutes later)."""
        a = self.args
        if not os.path.isfile(os.path.join(data, expect)):
            raise RunError(f"--data {data}: no {expect} there; make the data with {made_by}")
        if not os.path.isfile(a.checkpoint):
            raise RunError(f"--checkpoint {a.checkpoint}: no such file (the pretrained model.pt)")

    def train_argv(self, cfg: Dict[str, Any], run_dir: str, seed: int) -> List[str]:
        a = self.args
        argv = train_command(cfg)
        check_with_fairseq(argv + list(a.fairseq_args))
        argv = argv + ["--seed", str(seed), "--save-dir", run_dir]
        if "--log-format" not in argv:  # the records are read from fairseq's JSON log lines
            argv += ["--log-format", "json"]
        if a.num_gpus > 1:
            argv += ["--distributed-world-size", str(a.num_gpus)]
        if os.path.exists(os.path.join(run_dir, "checkpoint_last.pt")):  # continue an interrupted run
            argv += ["--restore-file", os.path.join(run_dir, "checkpoint_last.pt")]
            for flag in ("--reset-optimizer", "--reset-dataloader", "--reset-meters"):
                while flag in argv:
                    argv.remove(flag)
        return argv + list(a.fairseq_args)

    def settings_of(self, family: str, name: str, method: str, data: str, checkpoint: str
                    ) -> Iterator[Tuple[Dict[str, Any], Dict[str, Any], str, List[str]]]:
        """(config, hparams, folder tag, overrides of the setting) for each setting the options ask for: the grid
        with ``--sweep``, else the config's own (with ``--set``)."""
        a = self.args
        _, grid = compose(family, name, method, self.base_overrides(data, checkpoint), a.config_dir)
        for setting in settings(grid, a.sweep):
            over = [f"++{k}={v}" for k, v in setting.items()]
            cfg, _ = compose(family, name, method, self.base_overrides(data, checkpoint) + over, a.config_dir)
            if method in UPDATE_FACTOR:
                scale_updates(cfg, UPDATE_FACTOR[method])
            hparams = {k.split(".")[-1]: lookup(cfg, k) for k in sorted(grid)}
            yield cfg, hparams, ",".join(f"{k}={v}" for k, v in hparams.items()) or "default", over

    def runs(self, family: str, name: str, method: str, data: str, checkpoint: str
             ) -> Iterator[Tuple[Dict[str, Any], Dict[str, str], int, str]]:
        """(config, setting, seed, run folder) for every run the options ask for."""
        a = self.args
        for cfg, hparams, tag, _ in self.settings_of(family, name, method, data, checkpoint):
            for seed in a.seeds:
                yield cfg, hparams, seed, os.path.join(a.save_root, family, name, method, tag, f"seed{seed}")

    def check_glue_inputs(self, names: Sequence[str]) -> None:
        for name in sorted(set(names)):
            self.check_inputs(os.path.join(self.args.data, f"{GLUE_TASKS[name]}-bin"),
                              os.path.join("input0", "dict.txt"), "preprocess/glue.sh GLUE_DIR ALL DATA")

    def execute(self, command: List[str], run_dir: str, log_name: str) -> List[Tuple[float, str]]:
        os.makedirs(run_dir, exist_ok=True)
        log_path = os.path.join(run_dir, log_name)
        code, lines = stream(command, log_path)
        if code != 0:
            tail = "\n".join(line for _, line in lines[-25:])
            raise RunError(f"{command[2]} failed (exit {code}); full log: {log_path}\n{tail}")
        return lines

    def skip(self, run_dir: str) -> bool:
        if os.path.exists(os.path.join(run_dir, records.RECORD_NAME)) and not self.args.force:
            log(f"  done already: {run_dir}/{records.RECORD_NAME} (--force re-runs)")
            return True
        return False

    def record(self, run_dir: str, **fields: Any) -> Dict[str, Any]:
        record = dict(fields, tiny=bool(self.args.tiny))
        path = records.write_record(os.path.join(run_dir, records.RECORD_NAME), record)
        log(f"  record: {path}  metrics: {json.dumps(record['metrics'])}")
        return record

    def show(self, *commands: List[str]) -> None:
        for command in commands:
            print(shlex.join(command), flush=True)

    # -- families
    def run_glue(self) -> int:
        a = self.args
        name = config_name(a.task, GLUE_TASKS)
        task = GLUE_TASKS[name]
        data = os.path.join(a.data, f"{task}-bin")
        if not a.dry_run:
            self.check_glue_inputs([name])
        for cfg, hparams, seed, run_dir in self.runs("glue", name, a.method, data, a.checkpoint):
            train = fairseq_tool("train") + self.train_argv(cfg, run_dir, seed)
            log(f"[glue] {task} {a.method} {hparams or ''} seed {seed}")
            if a.dry_run:
                self.show(train)
                continue
            if self.skip(run_dir):
                continue
            started = time.time()
            lines = self.execute(train, run_dir, "train.log")
            best = self.best_of(lines, cfg)
            self.record(run_dir, kind="glue", task=task, method=a.method, seed=seed, hparams=hparams,
                        metrics=glue_metrics(lines, best), best_update=int(best["valid_num_updates"]),
                        **timings(lines, best, started),
                        command=train[2:])
        return 0

    def run_xnli(self) -> int:
        a = self.args
        languages = a.languages or list(XNLI_LANGUAGES)
        if not a.dry_run:
            self.check_inputs(a.data, os.path.join("input0", "dict.txt"), "preprocess/xnli.sh")
        for cfg, hparams, seed, run_dir in self.runs("xnli", "xnli", a.method, a.data, a.checkpoint):
            train = fairseq_tool("train") + self.train_argv(cfg, run_dir, seed)
            evaluate = fairseq_tool("validate") + [
                cfg["task"]["data"], "--user-dir", USER_DIR, "--path", os.path.join(run_dir, "checkpoint_best.pt"),
                "--task", cfg["task"]["_name"], "--criterion", cfg["criterion"]["_name"],
                "--num-classes", str(cfg["task"]["num_classes"]), "--valid-subset", ",".join(f"test_{lang}" for lang in languages),
                "--batch-size", str(cfg["dataset"].get("batch_size", 8)), "--log-format", "json",
            ] + (["--cpu"] if a.cpu else ["--fp16"] if a.fp16 else [])
            log(f"[xnli] {a.method} {hparams or ''} seed {seed}")
            if a.dry_run:
                self.show(train, evaluate)
                continue
            if self.skip(run_dir):
                continue
            started = time.time()
            lines = self.execute(train, run_dir, "train.log")
            best = best_validation(lines, "accuracy", True)
            eval_lines = self.execute(evaluate, run_dir, "test.log")
            metrics = {}
            for lang in languages:
                found = [r for r in json_log(eval_lines, f"test_{lang}") if f"test_{lang}_accuracy" in r]
                if not found:
                    raise RunError(f"fairseq-validate printed no accuracy for test_{lang}: {run_dir}/test.log")
                metrics[lang] = float(found[-1][f"test_{lang}_accuracy"])
            self.record(run_dir, kind="xnli", task="XNLI", method=a.method, seed=seed, hparams=hparams,
                        metrics=metrics, valid_accuracy=float(best["valid_accuracy"]),
                        best_update=int(best["valid_num_updates"]), **timings(lines, best, started), command=train[2:])
        return 0

    def run_summarization(self) -> int:
        a = self.args
        name = a.dataset
        if not a.dry_run:
            self.check_inputs(a.data, "dict.source.txt", "preprocess/summarization.sh")
        for cfg, hparams, seed, run_dir in self.runs("summarization", name, a.method, a.data, a.checkpoint):
            train = fairseq_tool("train") + self.train_argv(cfg, run_dir, seed)
            task = cfg["task"]
            generate = fairseq_tool("generate") + [
                task["data"], "--user-dir", USER_DIR, "--path", os.path.join(run_dir, "checkpoint_best.pt"),
                "--task", "translation", "--source-lang", task["source_lang"], "--target-lang", task["target_lang"],
                "--gen-subset", a.gen_subset, *generate_flags(cfg), "--batch-size", str(a.gen_batch_size),
                "--required-batch-size-multiple", "1",
                "--bpe", "gpt2", "--gpt2-encoder-json", a.encoder_json, "--gpt2-vocab-bpe", a.vocab_bpe,
            ] + (["--truncate-source"] if task.get("truncate_source") else []) + \
                (["--cpu"] if a.cpu else ["--fp16"] if a.fp16 else [])
            hypo, ref = os.path.join(run_dir, f"{a.gen_subset}.hypo"), os.path.join(run_dir, f"{a.gen_subset}.ref")
            score = ["rxf-rouge", a.reference or ref, hypo, "--ptb-tokenize", "--backend", a.rouge_backend, "-q"]
            log(f"[summarization] {name} {a.method} {hparams or ''} seed {seed}")
            if a.dry_run:
                self.show(train, generate, score)
                continue
            if self.skip(run_dir):
                continue
            started = time.time()
            lines = self.execute(train, run_dir, "train.log")
            best = best_validation(lines, "loss", False)
            gen_lines = self.execute(generate, run_dir, "generate.log")
            write_generations(gen_lines, hypo, ref)
            scores = rouge_scores(a.reference or ref, hypo, a.rouge_backend)
            self.record(run_dir, kind="summarization", task=name, method=a.method, seed=seed, hparams=hparams,
                        metrics=scores, valid_loss=float(best["valid_loss"]), best_update=int(best["valid_num_updates"]),
                        **timings(lines, best, started),
                        command=train[2:], generate=generate[2:], rouge=score)
        return 0


    # -- probing (the paper's Section 4; the probe itself: rxf_fairseq/probing.py)
    def glue_step(self, name: str, method: str, restore: str, run_dir: str, seed: int,
                  extra_overrides: Sequence[str] = (), user: Optional[Sequence[str]] = None
                  ) -> Tuple[List[str], Dict[str, Any], Dict[str, Any]]:
        """(fairseq-train command, config, hparams) of one GLUE fine-tuning or probing step."""
        a = self.args
        overrides = self.base_overrides(os.path.join(a.data, f"{GLUE_TASKS[name]}-bin"), restore, user)
        cfg, grid = compose("glue", name, method, overrides + list(extra_overrides), a.config_dir)
        if method in UPDATE_FACTOR:
            scale_updates(cfg, UPDATE_FACTOR[method])
        hparams = {k.split(".")[-1]: lookup(cfg, k) for k in sorted(grid)}
        return fairseq_tool("train") + self.train_argv(cfg, run_dir, seed), cfg, hparams

    def finetune_step(self, name: str, restore: str, run_dir: str, seed: int, setting: Sequence[str],
                      record_name: Optional[str] = None) -> str:
        """Fine-tune with the protocol's method (and grid ``setting``) from ``restore``; returns the best
        checkpoint. The head is named after the task, so the previous step's head is dropped, never reused (a
        fresh head). Chain steps write ``finetune.json`` and drop their ``checkpoint_last.pt`` once done (only
        the best checkpoint is used again); a fine-tune from the pretrained model is an ordinary GLUE run
        (``record.json``, part of Table 2)."""
        record_name = record_name or STEP_RECORD
        a = self.args
        train, cfg, hparams = self.glue_step(name, a.method, restore, run_dir, seed,
                                             [f"++criterion.classification_head_name={name}_head", *setting])
        best_path = os.path.join(run_dir, "checkpoint_best.pt")
        log(f"[probe] fine-tune {GLUE_TASKS[name]} with {a.method} (seed {seed}) from {restore}")
        if a.dry_run:
            self.show(train)
        elif os.path.exists(os.path.join(run_dir, record_name)) and not a.force:
            log(f"  done already: {run_dir}/{record_name}")
        else:
            started = time.time()
            lines = self.execute(train, run_dir, "train.log")
            best = self.best_of(lines, cfg)
            records.write_record(os.path.join(run_dir, record_name), dict(
                kind="glue", task=GLUE_TASKS[name], method=a.method, seed=seed, hparams=hparams,
                metrics=glue_metrics(lines, best), best_update=int(best["valid_num_updates"]),
                **timings(lines, best, started),
                tiny=bool(a.tiny), command=train[2:]))
            if record_name == STEP_RECORD and os.path.exists(os.path.join(run_dir, "checkpoint_last.pt")):
                os.remove(os.path.join(run_dir, "checkpoint_last.pt"))
        return best_path

    def probe_step(self, name: str, restore: str, run_dir: str, seed: int, info: Dict[str, Any],
                   hparams: Dict[str, Any]) -> None:
        """A linear probe of ``restore``'s frozen encoder on task ``name``; one ``probe`` record, carrying the
        fine-tuning setting (``hparams``) of the encoder it probed."""
        a = self.args
        train, cfg, _ = self.glue_step(name, "probe", restore, run_dir, seed, user=self.probe_overrides())
        log(f"[probe] probe {GLUE_TASKS[name]} on the encoder of {restore}")
        if a.dry_run:
            self.show(train)
            return
        if self.skip(run_dir):
            return
        started = time.time()
        lines = self.execute(train, run_dir, "train.log")
        best = self.best_of(lines, cfg)
        self.record(run_dir, kind="probe", task=GLUE_TASKS[name], method=a.method, seed=seed, hparams=hparams,
                    metrics=glue_metrics(lines, best), probe=info, best_update=int(best["valid_num_updates"]),
                    **timings(lines, best, started),
                    probed_checkpoint=restore, command=train[2:])

    def probe_overrides(self) -> List[str]:
        """``--set`` without the method's ``criterion.*`` options (the probe trains with the stock criterion),
        then ``--probe-set``."""
        a = self.args
        return [o for o in a.set or [] if not o.lstrip("+~").startswith("criterion.")] + list(a.probe_set or [])

    @staticmethod
    def best_of(lines: Sequence[Tuple[float, str]], cfg: Dict[str, Any]) -> Dict[str, Any]:
        checkpoint = cfg["checkpoint"]
        return best_validation(lines, checkpoint.get("best_checkpoint_metric", "loss"),
                               bool(checkpoint.get("maximize_best_checkpoint_metric")))

    def run_probe(self) -> int:
        """Figures 3-5. generalisation: fine-tune SST-2, probe the other six tasks. degradation: SST-2 ->
        QNLI -> QQP -> RTE, probing SST-2 after every step. retention: that chain for --cycles cycles,
        probing each task before it is fine-tuned again (the first probe of SST-2 is of the pretrained model).
        Each setting of the method's grid (``--sweep``; otherwise the config's, with ``--set``) runs the
        protocol in its own folder: ``SAVE_ROOT/probing/PROTOCOL/METHOD/SETTING/seedN``."""
        a = self.args
        if a.method == "none":
            return self.run_pretrained_probes()
        order = [config_name(t, GLUE_TASKS) for t in a.chain] if a.chain else list(PROBE_CHAIN)
        first = "sst_2" if a.protocol == "generalisation" else order[0]
        if not a.dry_run:
            self.check_glue_inputs(order if a.protocol != "generalisation" else
                                   ["sst_2"] + [config_name(t, GLUE_TASKS) for t in a.probe_tasks or GENERALISATION_PROBES])
        first_data = os.path.join(a.data, f"{GLUE_TASKS[first]}-bin")
        for _, hparams, tag, over in self.settings_of("glue", first, a.method, first_data, a.checkpoint):
            for seed in a.seeds:
                root = os.path.join(a.save_root, "probing", a.protocol, a.method, tag, f"seed{seed}")
                self.protocol(order, root, seed, over, hparams)
        return 0

    def run_pretrained_probes(self) -> int:
        """Method ``none``: the generalisation protocol's probes of the pretrained model itself (SST-2 included),
        the reference that fine-tuned encoders are compared with (Figure 3 measures collapse from it)."""
        a = self.args
        if a.protocol != "generalisation":
            raise RunError(f"method none (probes of the pretrained model, no fine-tuning) is for the generalisation "
                           f"protocol, not {a.protocol}")
        if a.sweep or any(o.lstrip("+~").startswith("criterion.") for o in a.set or []):
            raise RunError("method none fine-tunes nothing: --sweep and --set criterion.* do not apply")
        names = [config_name(t, GLUE_TASKS) for t in a.probe_tasks or ("sst_2",) + GENERALISATION_PROBES]
        if not a.dry_run:
            self.check_glue_inputs(names)
        for seed in a.seeds:
            root = os.path.join(a.save_root, "probing", "generalisation", "none", "default", f"seed{seed}")
            for name in names:
                self.probe_step(name, a.checkpoint, os.path.join(root, f"probe-{GLUE_TASKS[name]}"), seed,
                                {"protocol": "generalisation", "source": "SST-2", "chain": [], "step": 0, "cycle": 1,
                                 "finetuned_on": "none"}, {})
        return 0

    def protocol(self, order: List[str], root: str, seed: int, setting: List[str], hparams: Dict[str, Any]) -> None:
        a = self.args
        chain = [GLUE_TASKS[t] for t in order]
        if a.protocol == "generalisation":
            best = self.finetune_step("sst_2", a.checkpoint, os.path.join(root, "finetune-SST-2"), seed, setting,
                                      records.RECORD_NAME)
            for name in a.probe_tasks or GENERALISATION_PROBES:
                name = config_name(name, GLUE_TASKS)
                self.probe_step(name, best, os.path.join(root, f"probe-{GLUE_TASKS[name]}"), seed,
                                {"protocol": "generalisation", "source": "SST-2", "chain": ["SST-2"], "step": 0,
                                 "cycle": 1, "finetuned_on": "SST-2"}, hparams)
        elif a.protocol == "degradation":
            current = a.checkpoint
            for step, name in enumerate(order):
                current = self.finetune_step(name, current, os.path.join(root, f"step{step}-{GLUE_TASKS[name]}"), seed,
                                             setting)
                self.probe_step(order[0], current, os.path.join(root, f"step{step}-probe-{chain[0]}"), seed,
                                {"protocol": "degradation", "source": chain[0], "chain": chain, "step": step,
                                 "cycle": 1, "finetuned_on": GLUE_TASKS[name]}, hparams)
        else:
            current, last = a.checkpoint, "pretrained"
            for cycle in range(1, a.cycles + 1):
                for step, name in enumerate(order):
                    where = os.path.join(root, f"cycle{cycle}-step{step}")
                    self.probe_step(name, current, os.path.join(where, f"probe-{GLUE_TASKS[name]}"), seed,
                                    {"protocol": "retention", "source": chain[0], "chain": chain, "step": step,
                                     "cycle": cycle, "finetuned_on": last}, hparams)
                    current = self.finetune_step(name, current, os.path.join(where, f"finetune-{GLUE_TASKS[name]}"),
                                                 seed, setting)
                    last = GLUE_TASKS[name]


def write_generations(lines: Sequence[Tuple[float, str]], hypo_path: str, ref_path: str) -> int:
    """fairseq-generate's ``D-`` (detokenised hypothesis) and ``T-`` (target) lines, in input order."""
    hypos: Dict[int, str] = {}
    refs: Dict[int, str] = {}
    for _, line in lines:
        if line.startswith("D-"):
            key, _, text = line.split("\t", 2)
            hypos[int(key[2:])] = text
        elif line.startswith("T-"):
            key, text = line.split("\t", 1)
            refs[int(key[2:])] = text
    if not hypos or sorted(hypos) != sorted(refs):
        raise RunError(f"fairseq-generate gave {len(hypos)} hypotheses for {len(refs)} references")
    for path, texts in ((hypo_path, hypos), (ref_path, refs)):
        with open(path + ".tmp", "w", encoding="utf-8") as f:
            f.write("".join(" ".join(texts[i].split()) + "\n" for i in sorted(texts)))
        os.replace(path + ".tmp", path)
    return len(hypos)


def rouge_scores(reference: str, hypothesis: str, backend: str) -> Dict[str, float]:
    """ROUGE-1/2/L F x 100 from rxf-rouge (references first, as files2rouge), PTB-tokenised as BART's recipe."""
    import rxf_rouge

    documents, _ = rxf_rouge.read_documents(reference, hypothesis, ".")
    documents = [(i, rxf_rouge.ptb_tokenize(r), rxf_rouge.ptb_tokenize(s)) for i, r, s in documents]
    if backend == "perl":
        report = rxf_rouge.perl_rouge(documents, ".", True, None, False, 2, True)
    else:
        report = rxf_rouge.format_report(rxf_rouge.python_rouge(documents, ".", True, 1000, rouge_n=2, rouge_l=True))
    scores = rxf_rouge.parse_report(report)
    return {"rouge1": round(100 * scores["ROUGE-1"]["F"][0], 3), "rouge2": round(100 * scores["ROUGE-2"]["F"][0], 3),
            "rougeL": round(100 * scores["ROUGE-L"]["F"][0], 3)}


def config_name(task: str, names: Dict[str, str]) -> str:
    """``RTE``, ``rte``, ``SST-2`` and ``sst_2`` all name configs/glue/sst_2.yaml."""
    for key, paper in names.items():
        if task in (key, paper) or task.lower().replace("-", "_") == key:
            return key
    raise RunError(f"unknown task {task!r}; one of: {', '.join(names.values())}")


def seeds(text: str) -> List[int]:
    """``1-10`` or ``1,2,5``."""
    out: List[int] = []
    for part in text.split(","):
        if "-" in part:
            first, last = part.split("-", 1)
            out.extend(range(int(first), int(last) + 1))
        elif part:
            out.append(int(part))
    if not out:
        raise ValueError(text)
    return out


def build_parser() -> argparse.ArgumentParser:
    parser = argparse.ArgumentParser(prog="rxf-run", description=__doc__,
                                     formatter_class=argparse.RawDescriptionHelpFormatter,
                                     epilog="Arguments after -- go to fairseq-train last, so they win "
                                     "(e.g. -- --arch roberta_base --encoder-layers 2).")
    sub = parser.add_subparsers(dest="family", required=True)

    def common(p: argparse.ArgumentParser, methods: Sequence[str], default_seeds: str) -> None:
        p.add_argument("method", choices=methods)
        p.add_argument("--data", required=True, help="fairseq binaries made by preprocess/ (GLUE and probing: "
                       "the folder of TASK-bin/ folders, as preprocess/glue.sh ALL writes it)")
        p.add_argument("--checkpoint", required=True, help="the pretrained model (e.g. roberta.large/model.pt)")
        p.add_argument("--save-root", default="runs", help="run folders and records go under here")
        p.add_argument("--seeds", type=seeds, default=seeds(default_seeds), help=f"e.g. 1-10 or 1,3 (default {default_seeds})")
        p.add_argument("--sweep", action="store_true", help="every setting of the method's grid (lambda x noise type)")
        p.add_argument("--set", action="append", metavar="KEY=VALUE",
                       help="Hydra override of the config, e.g. criterion.r3f_lambda=0.5 (repeatable)")
        p.add_argument("--num-gpus", type=int, default=1, help="GPUs per run (fairseq's distributed training)")
        p.add_argument("--no-fp16", dest="fp16", action="store_false", help="train in fp32 (the configs use fp16)")
        p.add_argument("--cpu", action="store_true", help="train on the CPU (implies --no-fp16)")
        p.add_argument("--dry-run", action="store_true", help="print every command and run nothing")
        p.add_argument("--force", action="store_true", help="re-run runs that already have a record")
        p.add_argument("--tiny", action="store_true", help="mark the records as tiny test runs, not paper scale")
        p.add_argument("--config-dir", default=CONFIG_DIR, help=argparse.SUPPRESS)

    glue = sub.add_parser("glue", help="GLUE (Table 2)")
    glue.add_argument("task", help="MNLI QNLI QQP SST-2 RTE MRPC CoLA STS-B (or the config name, e.g. sst_2)")
    common(glue, METHODS["glue"], "1-10")
    xnli = sub.add_parser("xnli", help="XNLI zero-shot (Table 3)")
    common(xnli, METHODS["xnli"], "1-5")
    xnli.add_argument("--languages", nargs="+", choices=XNLI_LANGUAGES, help="test languages (default: all 15)")
    summ = sub.add_parser("summarization", help="BART summarisation (Table 4)")
    summ.add_argument("dataset", choices=SUMMARIZATION)
    common(summ, METHODS["summarization"], "1")
    summ.add_argument("--encoder-json", required=True, help="GPT-2 BPE encoder.json (to decode the generations)")
    summ.add_argument("--vocab-bpe", required=True, help="GPT-2 BPE vocab.bpe")
    summ.add_argument("--reference", help="reference summaries (default: the decoded targets of --gen-subset)")
    summ.add_argument("--gen-subset", default="test")
    summ.add_argument("--gen-batch-size", type=int, default=32)
    summ.add_argument("--rouge-backend", choices=["perl", "python"], default="perl")
    probe = sub.add_parser("probe", help="representational-collapse probing (Figures 3-5)")
    probe.add_argument("protocol", choices=["generalisation", "degradation", "retention"])
    common(probe, ("std", "std++", "r3f", "r4f", "fast-r3f", "smart", "none"), "1-3")
    probe.add_argument("--cycles", type=int, default=3, help="retention: cycles of the chain (default 3)")
    probe.add_argument("--probe-tasks", nargs="+", help="generalisation: tasks to probe (default the paper's six)")
    probe.add_argument("--chain", nargs="+", help="degradation/retention: the task chain, source first "
                       "(default the paper's SST-2 QNLI QQP RTE)")
    probe.add_argument("--probe-set", action="append", metavar="KEY=VALUE",
                       help="Hydra override for the linear probes only (--set applies to fine-tuning and probes, "
                       "except its criterion.* keys, which are the method's)")
    return parser


def main(argv: Optional[Sequence[str]] = None) -> int:
    argv = list(sys.argv[1:] if argv is None else argv)
    extra: List[str] = []
    if "--" in argv:
        argv, extra = argv[:argv.index("--")], argv[argv.index("--") + 1:]
    args = build_parser().parse_args(argv)
    args.fairseq_args = extra
    if args.cpu:
        args.fp16 = False
    runner = Runner(args)
    try:
        check_overrides(args.set or [])
        check_overrides(getattr(args, "probe_set", None) or [], "--probe-set")
        return getattr(runner, f"run_{args.family}")()
    except (RunError, records.RecordError) as error:
        print(f"rxf-run: error: {error}", file=sys.stderr)
        return 1


if __name__ == "__main__":
    sys.exit(main())
