"""The reproduction runs behind ``run_scripts/*.sh``: configs -> fairseq commands -> one record per run.

``configs/{glue,xnli,summarization}/NAME.yaml`` are fairseq-hydra-train configs (the paper's Appendix A.2);
``method/*.yaml`` in the same folder select the method, and the R3F/R4F/SMART method files carry the
paper's search grid as ``hydra.sweeper.params``. This module composes exactly those files with Hydra (the
same composition ``fairseq-hydra-train --config-dir configs/glue --config-name rte method=r4f`` does),
turns the result into a ``fairseq-train`` command line, runs it once per (grid setting, seed), finds the
best validation checkpoint, evaluates it (XNLI: the 15 test languages; summarisation: generation with
the dataset's decoding settings and rxf-rouge), and writes ``record.json`` (``rxf_repro/records.py``).

Run folders: ``SAVE_ROOT/FAMILY/TASK/METHOD/SETTING/seedN``; a run whose record exists is skipped (so an
interrupted sweep is resumed by running the same command again; ``--force`` re-runs), and a run folder
with a ``checkpoint_last.pt`` but no record continues from it.
"""

import argparse
import copy
import importlib.util
import itertools
import os
import re
import shlex
import sys
import time
from typing import Any, Dict, Iterator, List, Optional, Sequence, Set, Tuple

from rxf_repro import attempts, catalog, configs, process, records, slurm, status
from rxf_repro.cli import non_negative_int, positive_int
from rxf_repro.execution import (
    PROBE_FEATURES,
    Executor,
    Planned,
    RunError,
    RunSpec,
    Trained,
    fairseq_tool,
    log,
    resuming,
)

# the plugin's folder, for --user-dir, found without importing it (that would import fairseq)
USER_DIR = os.path.dirname(importlib.util.find_spec("rxf_fairseq").origin)
# config section -> the fairseq-train flag its ``_name`` becomes
NAME_FLAGS = {
    "task": "--task",
    "model": "--arch",
    "criterion": "--criterion",
    "optimizer": "--optimizer",
    "lr_scheduler": "--lr-scheduler",
}
PROBE_CHAIN, GENERALISATION_PROBES, PRETRAINED = catalog.PROBE_CHAIN, catalog.GENERALISATION_PROBES, catalog.PRETRAINED
# fairseq (main, so fairseq-fixed) drops the last batch of an evaluation when it is not a multiple of
# --required-batch-size-multiple (default 8): XNLI's 5,010 test sentences per language would be scored on 5,008, CNN/DM's
# 11,490 test articles summarised 11,488 times. Every evaluation here keeps every example.
EVAL_BATCHES = ("--required-batch-size-multiple", "1")
TRAIN_SECTIONS = (
    "common",
    "distributed_training",
    "dataset",
    "optimization",
    "checkpoint",
    "task",
    "model",
    "criterion",
    "optimizer",
    "lr_scheduler",
)


# ------------------------------------------------------------------------------------------ configs


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
            if (section, key) in (("task", "data"), ("checkpoint", "save_dir")):
                continue  # the data is the positional argument; rxf-run gives every run its own --save-dir
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


def check_with_fairseq(argv: Sequence[str], tool: str = "train") -> None:
    """Parse a fairseq-train (or fairseq-generate) command line with fairseq's own parser before anything runs,
    and run our criteria's start-up checks on it, so a misspelt ``--set`` key (``generation.beem``), a value of the
    wrong type or out of range (``criterion.eps=-1``) or a bad ``-- FAIRSEQ_ARGS`` fails now, not hours into a
    sweep."""
    key = (tool, *argv)
    if key in _CHECKED:
        return
    import contextlib
    import io

    from fairseq import options

    parser = options.get_training_parser() if tool == "train" else options.get_generation_parser()
    message = io.StringIO()
    try:
        with contextlib.redirect_stderr(message):
            parsed = options.parse_args_and_arch(parser, list(argv))
    except SystemExit:
        error = message.getvalue().strip().splitlines()[-1:] or ["invalid arguments"]
        raise RunError(
            f"fairseq-{tool} would refuse this command ({error[0]}); check --set and the arguments "
            f"after --: {shlex.join(argv)}"
        ) from None
    if tool == "train":
        check_criterion_options(parsed)
    _CHECKED.add(key)


def check_criterion_options(parsed: argparse.Namespace) -> None:
    """Our criteria's own start-up checks (noise scale, lambda, noise type, SMART's options), on the parsed
    command line: what fairseq-train would refuse when it builds the criterion, refused before any run."""
    from fairseq.criterions import CRITERION_DATACLASS_REGISTRY, CRITERION_REGISTRY

    name = getattr(parsed, "criterion", None)
    check = getattr(CRITERION_REGISTRY.get(name), "check_options", None)
    if check is None:
        return
    config_class = CRITERION_DATACLASS_REGISTRY[name]
    config = config_class(**{k: getattr(parsed, k) for k in config_class.__dataclass_fields__ if hasattr(parsed, k)})
    try:
        check(config)
    except ValueError as error:
        message = getattr(error, "message", str(error))
        raise RunError(f"--criterion {name}: {message} (check --set criterion.* and the arguments after --)") from None


def generate_flags(cfg: Dict[str, Any]) -> List[str]:
    argv = []
    for key, value in (cfg.get("generation") or {}).items():
        if value is not None and value is not False:
            argv += ["--" + key.replace("_", "-")] + ([] if value is True else _value(value))
    return argv


# ------------------------------------------------------------------------------------- running


def glue_metrics(runs_: Sequence[attempts.Attempt], best: attempts.Best) -> Dict[str, float]:
    """The metrics of the best validation; MNLI's mismatched accuracy from the ``valid1`` line that fairseq
    logged with it (same attempt, same update)."""
    metrics = {}
    for name in records.GLUE_METRICS:
        if f"valid_{name}" in best.record:
            metrics[name] = float(best.record[f"valid_{name}"])
    mismatched = [
        r
        for r in attempts.json_log(runs_[best.attempt].lines, "valid1")
        if r.get("valid1_num_updates") == best.record.get("valid_num_updates")
    ]
    if mismatched and "valid1_accuracy" in mismatched[-1]:  # MNLI: valid1 = dev_mismatched
        metrics["accuracy_mm"] = float(mismatched[-1]["valid1_accuracy"])
    return metrics


class Runner:
    """Options shared by the three families; one ``run_*`` method per family."""

    def __init__(self, args: argparse.Namespace, plan: Optional[List[Planned]] = None, only: Optional[str] = None):
        self.args = args
        self.executor = Executor(
            args.dry_run,
            args.force,
            bool(args.tiny),
            args.progress_every,
            # a multi-GPU run spawns its workers afresh anyway; it keeps the plain command
            in_process=args.in_process and args.num_gpus == 1,
            plan=plan,
            only=only,
            on_unit=slurm.claim if only else None,
        )
        self._composed: Dict[Tuple, Tuple[Dict[str, Any], Dict[str, List[str]]]] = {}

    # -- command construction
    def base_overrides(self, user: Optional[Sequence[str]] = None) -> List[str]:
        """The overrides every run gets, then the user's (``--set``; ``user`` replaces them for probe steps)."""
        a = self.args
        over = [f"common.user_dir={hydra_quote(USER_DIR)}"]
        if a.cpu:
            over += ["common.cpu=true", "common.fp16=false"]
        elif not a.fp16:
            over += ["common.fp16=false"]
        # ``++``: set the key whether or not the YAML names it (fairseq-hydra-train knows every key
        # through fairseq's schema; a plain compose knows only the keys in the files)
        user = list(a.set or []) if user is None else list(user)
        return ["++" + o for o in over] + [o if o[:1] in "+~" else "++" + o for o in user]

    def compose(
        self,
        family: str,
        name: str,
        method: str,
        data: str,
        checkpoint: str,
        extra: Sequence[str] = (),
        user: Optional[Sequence[str]] = None,
    ) -> Tuple[Dict[str, Any], Dict[str, List[str]]]:
        """``compose`` with the base and user overrides, then the run's data and pretrained checkpoint set in the
        result: composing costs ~0.6 s, and a protocol composes the same overrides for many steps that differ
        only in those two paths (a retention dry run: 26 compositions, 4 of them different)."""
        key = (family, name, method, tuple(self.base_overrides(user)) + tuple(extra), self.args.config_dir)
        if key not in self._composed:
            try:
                self._composed[key] = configs.compose(family, name, method, list(key[3]), self.args.config_dir)
            except configs.ConfigError as error:
                raise RunError(str(error)) from None
        cfg, grid = copy.deepcopy(self._composed[key])
        cfg.setdefault("task", {})["data"] = data
        cfg.setdefault("checkpoint", {})["restore_file"] = checkpoint
        return cfg, grid

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
        last = os.path.join(run_dir, "checkpoint_last.pt")
        if os.path.exists(last) and not a.force:  # shown so by --dry-run; the executor decides with the lock held
            argv = resuming(argv, last)
        return argv + list(a.fairseq_args)

    def settings_of(
        self, family: str, name: str, method: str, data: str, checkpoint: str
    ) -> Iterator[Tuple[Dict[str, Any], Dict[str, Any], str, List[str]]]:
        """(config, hparams, folder tag, overrides of the setting) for each setting the options ask for: the grid
        with ``--sweep``, else the config's own (with ``--set``)."""
        a = self.args
        _, grid = self.compose(family, name, method, data, checkpoint)
        for setting in settings(grid, a.sweep):
            over = [f"++{k}={v}" for k, v in setting.items()]
            cfg, _ = self.compose(family, name, method, data, checkpoint, over)
            hparams = {k.split(".")[-1]: lookup(cfg, k) for k in sorted(grid)}
            yield cfg, hparams, ",".join(f"{k}={v}" for k, v in hparams.items()) or "default", over

    def runs(
        self, family: str, name: str, method: str, data: str, checkpoint: str
    ) -> Iterator[Tuple[Dict[str, Any], Dict[str, str], int, str]]:
        """(config, setting, seed, run folder) for every run the options ask for."""
        a = self.args
        for cfg, hparams, tag, _ in self.settings_of(family, name, method, data, checkpoint):
            for seed in a.seeds:
                yield cfg, hparams, seed, os.path.join(a.save_root, family, name, method, tag, f"seed{seed}")

    def check_glue_inputs(self, names: Sequence[str]) -> None:
        for name in sorted(set(names)):
            self.check_inputs(
                os.path.join(self.args.data, f"{catalog.TASKS[name]}-bin"),
                os.path.join("input0", "dict.txt"),
                f"preprocess/glue.sh GLUE_DIR ALL {self.args.data} (--data is the folder of TASK-bin/)",
            )

    # -- the runs of each family, as specs for the executor
    def spec(
        self,
        label: str,
        cfg: Dict[str, Any],
        run_dir: str,
        fields: Dict[str, Any],
        evaluate,
        module: Optional[str] = None,
        **more,
    ) -> RunSpec:
        """A run of ``cfg`` in ``run_dir`` with the seed of ``fields``: its fairseq-train command built here (run by
        ``python -m MODULE`` instead with ``module``, a tool that takes fairseq-train's arguments)."""
        tool = [sys.executable, "-m", module] if module else fairseq_tool("train")
        train = tool + self.train_argv(cfg, run_dir, fields["seed"])
        return RunSpec(label=label, run_dir=run_dir, train=train, cfg=cfg, fields=fields, evaluate=evaluate, **more)

    def glue_spec(
        self, family: str, name: str, method: str, cfg: Dict[str, Any], hparams: Dict[str, Any], seed: int, run_dir: str
    ) -> RunSpec:
        """A GLUE fine-tuning run (Table 2), its metrics those of the best validation."""
        task = catalog.TASKS[name]
        fields = dict(kind="glue", task=task, method=method, seed=seed, hparams=hparams)
        return self.spec(
            f"[{family}] {task} {method} {hparams or ''} seed {seed}", cfg, run_dir, fields, validation_metrics
        )

    def run_glue(self) -> int:
        a = self.args
        name = config_name(a.task)
        data = os.path.join(a.data, f"{catalog.TASKS[name]}-bin")
        if not a.dry_run:
            self.check_glue_inputs([name])
        for cfg, hparams, seed, run_dir in self.runs("glue", name, a.method, data, a.checkpoint):
            self.executor.run(self.glue_spec("glue", name, a.method, cfg, hparams, seed, run_dir))
        return 0

    def run_xnli(self) -> int:
        a = self.args
        languages = a.languages or list(catalog.XNLI_LANGUAGES)
        if not a.dry_run:
            self.check_inputs(
                a.data,
                os.path.join("input0", "dict.txt"),
                f"preprocess/xnli.sh MNLI_DIR XNLI_DIR {a.data} --sentencepiece-model ... --dict ...",
            )
        for cfg, hparams, seed, run_dir in self.runs("xnli", "xnli", a.method, a.data, a.checkpoint):
            # fmt: off
            test = fairseq_tool("validate") + [
                cfg["task"]["data"], "--user-dir", USER_DIR, "--path", os.path.join(run_dir, "checkpoint_best.pt"),
                "--task", cfg["task"]["_name"], "--criterion", cfg["criterion"]["_name"],
                "--num-classes", str(cfg["task"]["num_classes"]),
                "--valid-subset", ",".join(f"test_{lang}" for lang in languages),
                "--batch-size", str(cfg["dataset"].get("batch_size", 8)), "--log-format", "json", *EVAL_BATCHES,
            ] + self.device_flags()
            # fmt: on

            def evaluate(executor: Executor, trained: Trained, test: List[str] = test) -> Dict[str, Any]:
                tested = executor.execute(test, trained.run_dir, "test.log")
                metrics = {}
                for lang in languages:
                    found = [r for r in attempts.json_log(tested.lines, f"test_{lang}") if f"test_{lang}_accuracy" in r]
                    if not found:
                        raise RunError(
                            f"fairseq-validate printed no accuracy for test_{lang}: {trained.run_dir}/test.log"
                        )
                    metrics[lang] = float(found[-1][f"test_{lang}_accuracy"])
                return dict(metrics=metrics, valid_accuracy=float(trained.best.record["valid_accuracy"]))

            fields = dict(kind="xnli", task="XNLI", method=a.method, seed=seed, hparams=hparams)
            label = f"[xnli] {a.method} {hparams or ''} seed {seed}"
            self.executor.run(self.spec(label, cfg, run_dir, fields, evaluate, shown=[test]))
        return 0

    def device_flags(self) -> List[str]:
        """The evaluation tools' device flags: ``--cpu``, or ``--fp16`` as the training."""
        return ["--cpu"] if self.args.cpu else ["--fp16"] if self.args.fp16 else []

    def run_summarization(self) -> int:
        a = self.args
        name = a.dataset
        if not a.dry_run:
            self.check_inputs(
                a.data,
                "dict.source.txt",
                f"preprocess/summarization.sh {name} RAW_DIR {a.data} (run_scripts/summarization.sh "
                f"reads SUMM_BIN/DATASET-bin)",
            )
        for cfg, hparams, seed, run_dir in self.runs("summarization", name, a.method, a.data, a.checkpoint):
            task = cfg["task"]
            # fmt: off
            generate = fairseq_tool("generate") + [
                task["data"], "--user-dir", USER_DIR, "--path", os.path.join(run_dir, "checkpoint_best.pt"),
                "--task", "translation", "--source-lang", task["source_lang"], "--target-lang", task["target_lang"],
                "--gen-subset", a.gen_subset, *generate_flags(cfg), "--batch-size", str(a.gen_batch_size),
                *EVAL_BATCHES, "--bpe", "gpt2", "--gpt2-encoder-json", a.encoder_json, "--gpt2-vocab-bpe", a.vocab_bpe,
            ] + (["--truncate-source"] if task.get("truncate_source") else []) + self.device_flags()
            # fmt: on
            check_with_fairseq(generate[3:], "generate")  # e.g. --set generation.beem=4, before training
            hypo, ref = os.path.join(run_dir, f"{a.gen_subset}.hypo"), os.path.join(run_dir, f"{a.gen_subset}.ref")
            score = ["rxf-rouge", a.reference or ref, hypo, "--ptb-tokenize", "--backend", a.rouge_backend, "-q"]

            def evaluate(
                executor: Executor, trained: Trained, generate=generate, hypo=hypo, ref=ref, score=score
            ) -> Dict[str, Any]:
                generated = executor.execute(generate, trained.run_dir, "generate.log")
                write_generations(generated.lines, hypo, ref)
                return dict(
                    metrics=rouge_scores(a.reference or ref, hypo, a.rouge_backend),
                    valid_loss=float(trained.best.record["valid_loss"]),
                    generate=generate[2:],
                    rouge=score,
                )

            fields = dict(kind="summarization", task=name, method=a.method, seed=seed, hparams=hparams)
            label = f"[summarization] {name} {a.method} {hparams or ''} seed {seed}"
            self.executor.run(self.spec(label, cfg, run_dir, fields, evaluate, shown=[generate, score]))
        return 0

    # -- probing (the paper's Section 4; the probe itself: rxf/probing.py)
    def glue_step(
        self,
        name: str,
        method: str,
        restore: str,
        seed: int,
        extra_overrides: Sequence[str] = (),
        user: Optional[Sequence[str]] = None,
    ) -> Tuple[Dict[str, Any], Dict[str, Any]]:
        """(config, hparams) of one GLUE fine-tuning or probing step from ``restore``."""
        a = self.args
        cfg, grid = self.compose(
            "glue", name, method, os.path.join(a.data, f"{catalog.TASKS[name]}-bin"), restore, extra_overrides, user
        )
        return cfg, {k.split(".")[-1]: lookup(cfg, k) for k in sorted(grid)}

    def finetune_step(
        self, name: str, restore: str, run_dir: str, seed: int, setting: Sequence[str], chained: bool = True
    ) -> str:
        """Fine-tune with the protocol's method (and grid ``setting``) from ``restore``; returns the best
        checkpoint. The head is named after the task, so the previous step's head is dropped, never reused (a
        fresh head). Chain steps write ``finetune.json`` and drop their ``checkpoint_last.pt`` once done (only
        the best checkpoint is used again); a fine-tune from the pretrained model (``chained=False``) is an
        ordinary GLUE run (``record.json``, part of Table 2)."""
        a = self.args
        cfg, hparams = self.glue_step(
            name, a.method, restore, seed, [f"++criterion.classification_head_name={name}_head", *setting]
        )
        spec = self.glue_spec("probe", name, a.method, cfg, hparams, seed, run_dir)
        spec.label = f"[probe] fine-tune {catalog.TASKS[name]} with {a.method} (seed {seed}) from {restore}"
        if chained:
            spec.record_name, spec.keep_last = records.STEP_RECORD_NAME, False
        self.executor.run(spec)
        return spec.best_checkpoint

    def probe_step(
        self, name: str, restore: str, run_dir: str, seed: int, info: Dict[str, Any], hparams: Dict[str, Any]
    ) -> None:
        """A linear probe of ``restore``'s frozen encoder on task ``name``; one ``probe`` record, carrying the
        fine-tuning setting (``hparams``) of the encoder it probed."""
        a = self.args
        cfg, _ = self.glue_step(name, "probe", restore, seed, user=self.probe_overrides())
        fields = dict(
            kind="probe",
            task=catalog.TASKS[name],
            method=a.method,
            seed=seed,
            hparams=hparams,
            probe=info,
            probed_checkpoint=restore,
        )
        label = f"[probe] probe {catalog.TASKS[name]} on the encoder of {restore}"
        # cached: the same probe, fit on the frozen encoder's features computed once
        module = PROBE_FEATURES if a.probe_fit == "cached" else None
        self.executor.run(self.spec(label, cfg, run_dir, fields, validation_metrics, module))

    def probe_overrides(self) -> List[str]:
        """``--set`` without the method's ``criterion.*`` options (the probe trains with the stock criterion),
        then ``--probe-set``."""
        a = self.args
        return [o for o in a.set or [] if not o.lstrip("+~").startswith("criterion.")] + list(a.probe_set or [])

    def run_probe(self) -> int:
        """Figures 3-5. generalisation: fine-tune SST-2, probe the other six tasks. degradation: SST-2 ->
        QNLI -> QQP -> RTE, probing SST-2 after every step. retention: that chain for --cycles cycles,
        probing each task before it is fine-tuned again (the first probe of SST-2 is of the pretrained model).
        Each setting of the method's grid (``--sweep``; otherwise the config's, with ``--set``) runs the
        protocol in its own folder: ``SAVE_ROOT/probing/PROTOCOL/METHOD/SETTING/seedN``."""
        a = self.args
        if a.method == PRETRAINED:
            return self.run_pretrained_probes()
        order = a.chain or list(PROBE_CHAIN)
        first = a.source_task if a.protocol == "generalisation" else order[0]
        if not a.dry_run:
            probed = [first, *(a.probe_tasks or GENERALISATION_PROBES)]
            self.check_glue_inputs(order if a.protocol != "generalisation" else probed)
        first_data = os.path.join(a.data, f"{catalog.TASKS[first]}-bin")
        for _, hparams, tag, over in self.settings_of("glue", first, a.method, first_data, a.checkpoint):
            for seed in a.seeds:
                root = os.path.join(a.save_root, "probing", a.protocol, a.method, tag, f"seed{seed}")
                with self.executor.unit(root) as mine:  # each step starts from the one before: one unit
                    if mine:
                        self.protocol(order, root, seed, over, hparams)
        return 0

    def run_pretrained_probes(self) -> int:
        """Method ``none``: the generalisation protocol's probes of the pretrained model itself (SST-2 included),
        the reference that fine-tuned encoders are compared with (Figure 3 measures collapse from it)."""
        a = self.args
        if a.protocol != "generalisation":
            raise RunError(
                f"method none (probes of the pretrained model, no fine-tuning) is for the generalisation "
                f"protocol, not {a.protocol}"
            )
        if a.sweep or any(o.lstrip("+~").startswith("criterion.") for o in a.set or []):
            raise RunError("method none fine-tunes nothing: --sweep and --set criterion.* do not apply")
        source = a.source_task
        names = a.probe_tasks or [source, *GENERALISATION_PROBES]
        if not a.dry_run:
            self.check_glue_inputs(names)
        info = records.probe_info("generalisation", [], finetuned_on=PRETRAINED, source=catalog.TASKS[source])
        for seed in a.seeds:
            root = os.path.join(a.save_root, "probing", "generalisation", PRETRAINED, "default", f"seed{seed}")
            with self.executor.unit(root) as mine:
                if mine:
                    for name in names:
                        run_dir = os.path.join(root, f"probe-{catalog.TASKS[name]}")
                        self.probe_step(name, a.checkpoint, run_dir, seed, info, {})
        return 0

    def protocol(self, order: List[str], root: str, seed: int, setting: List[str], hparams: Dict[str, Any]) -> None:
        a = self.args
        chain = [catalog.TASKS[t] for t in order]
        if a.protocol == "generalisation":
            source = catalog.TASKS[a.source_task]
            best = self.finetune_step(
                a.source_task, a.checkpoint, os.path.join(root, f"finetune-{source}"), seed, setting, chained=False
            )
            info = records.probe_info("generalisation", [source], finetuned_on=source)
            for name in a.probe_tasks or GENERALISATION_PROBES:
                self.probe_step(name, best, os.path.join(root, f"probe-{catalog.TASKS[name]}"), seed, info, hparams)
        elif a.protocol == "degradation":
            current = a.checkpoint
            for step, name in enumerate(order):
                current = self.finetune_step(
                    name, current, os.path.join(root, f"step{step}-{catalog.TASKS[name]}"), seed, setting
                )
                info = records.probe_info("degradation", chain, step, finetuned_on=catalog.TASKS[name])
                self.probe_step(
                    order[0], current, os.path.join(root, f"step{step}-probe-{chain[0]}"), seed, info, hparams
                )
        else:
            current, last = a.checkpoint, "pretrained"
            for cycle in range(1, a.cycles + 1):
                for step, name in enumerate(order):
                    where = os.path.join(root, f"cycle{cycle}-step{step}")
                    info = records.probe_info("retention", chain, step, cycle, finetuned_on=last)
                    self.probe_step(
                        name, current, os.path.join(where, f"probe-{catalog.TASKS[name]}"), seed, info, hparams
                    )
                    current = self.finetune_step(
                        name, current, os.path.join(where, f"finetune-{catalog.TASKS[name]}"), seed, setting
                    )
                    last = catalog.TASKS[name]


def validation_metrics(executor: Executor, trained: Trained) -> Dict[str, Any]:
    """The evaluation of a GLUE run or a probe: the metrics of its best validation (no further pass)."""
    return dict(metrics=glue_metrics(trained.attempts, trained.best))


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
    from rxf_repro import rouge as rxf_rouge

    try:
        documents, _ = rxf_rouge.read_documents(reference, hypothesis, ".")
        documents = [(i, rxf_rouge.ptb_tokenize(r), rxf_rouge.ptb_tokenize(s)) for i, r, s in documents]
        if backend == "perl":
            report = rxf_rouge.perl_rouge(documents, ".", stemming=True, rouge_n=2, rouge_l=True)
        else:
            report = rxf_rouge.format_report(
                rxf_rouge.python_rouge(documents, ".", stemming=True, n_samples=1000, rouge_n=2, rouge_l=True)
            )
    except rxf_rouge.RougeError as error:
        raise RunError(f"rxf-rouge {reference} {hypothesis}: {error}") from None
    scores = rxf_rouge.parse_report(report)
    return {
        "rouge1": round(100 * scores["ROUGE-1"]["F"][0], 3),
        "rouge2": round(100 * scores["ROUGE-2"]["F"][0], 3),
        "rougeL": round(100 * scores["ROUGE-L"]["F"][0], 3),
    }


def config_name(task: str) -> str:
    """``SST-2`` and ``sst_2`` both name configs/glue/sst_2.yaml (``catalog.glue_config``); ``RunError`` if none does."""
    try:
        return catalog.glue_config(task)
    except ValueError as error:
        raise RunError(str(error)) from None


def task_config(text: str) -> str:
    """argparse type of --source-task, --probe-tasks and --chain: the task's config name (``config_name``)."""
    try:
        return catalog.glue_config(text)
    except ValueError as error:
        raise argparse.ArgumentTypeError(str(error)) from None


def seeds(text: str) -> List[int]:
    """``1-10`` or ``1,2,5`` (or both, ``1-3,7``): each seed once, none negative."""
    out: List[int] = []
    for part in text.split(","):
        try:
            if "-" in part.strip()[1:]:
                first, last = (int(v) for v in part.split("-", 1))
                if last < first:
                    raise argparse.ArgumentTypeError(f"{part!r} is an empty range (write {last}-{first})")
                out.extend(range(first, last + 1))
            else:
                out.append(int(part))
        except ValueError:
            raise argparse.ArgumentTypeError(f"{text!r}: expected seeds such as 1-10 or 1,3,5") from None
    repeated = sorted({s for s in out if out.count(s) > 1})
    if repeated:
        raise argparse.ArgumentTypeError(f"{text!r} names seed(s) {', '.join(map(str, repeated))} more than once")
    if any(s < 0 for s in out):
        raise argparse.ArgumentTypeError(f"{text!r}: seeds are >= 0")
    return out


def build_parser() -> argparse.ArgumentParser:
    parser = argparse.ArgumentParser(
        prog="rxf-run",
        description=__doc__,
        formatter_class=argparse.RawDescriptionHelpFormatter,
        epilog="Arguments after -- go to fairseq-train last, so they win "
        "(e.g. -- --arch roberta_base --encoder-layers 2).",
    )
    sub = parser.add_subparsers(dest="family", required=True)

    def common(
        p: argparse.ArgumentParser, methods: Sequence[str], default_seeds: str, data_help: str, checkpoint_help: str
    ) -> None:
        p.add_argument("method", choices=methods, help="the fine-tuning method: configs/FAMILY/method/METHOD.yaml")
        p.add_argument("--data", required=True, help=data_help)
        p.add_argument("--checkpoint", required=True, help=checkpoint_help)
        p.add_argument("--save-root", default="runs", help="run folders and records go under here (default: runs)")
        p.add_argument(
            "--seeds",
            type=seeds,
            default=seeds(default_seeds),
            help=f"e.g. 1-10 or 1,3 or 1-3,7; each seed once (default {default_seeds})",
        )
        p.add_argument("--sweep", action="store_true", help="every setting of the method's grid (lambda x noise type)")
        p.add_argument(
            "--set",
            action="append",
            metavar="KEY=VALUE",
            help="Hydra override of the config, e.g. criterion.r3f_lambda=0.5 (repeatable); checked with "
            "fairseq's own parser before anything runs",
        )
        p.add_argument("--num-gpus", type=positive_int, default=1, help="GPUs per run (fairseq's distributed training)")
        p.add_argument("--no-fp16", dest="fp16", action="store_false", help="train in fp32 (the configs use fp16)")
        p.add_argument("--cpu", action="store_true", help="train on the CPU (implies --no-fp16)")
        p.add_argument("--dry-run", action="store_true", help="print every command and run nothing")
        p.add_argument(
            "--force",
            action="store_true",
            help="re-run every asked run from the start, deleting its "
            "earlier checkpoints, logs and record (also the way past an unreadable checkpoint_last.pt)",
        )
        p.add_argument("--tiny", action="store_true", help="mark the records as tiny test runs, not paper scale")
        p.add_argument(
            "--fresh-interpreter",
            dest="in_process",
            action="store_false",
            help="start each fairseq command in a new Python, exactly as --dry-run prints it, instead of a fork "
            "of this one (which has fairseq imported already: ~4 s less a run on a CPU, the same results; "
            "--num-gpus above 1 always starts afresh)",
        )
        p.add_argument(
            "--progress-every",
            type=float,
            default=30.0,
            metavar="SECONDS",
            help="seconds between progress lines (update, loss, s/update, ETA) on stderr; 0: none "
            "(default 30; fairseq's full output is in each run's train.log)",
        )
        p.add_argument("--config-dir", default=None, help=argparse.SUPPRESS)  # tests: another configs/
        launch = p.add_argument_group("launching on Slurm (docs/cluster.md)")
        launch.add_argument(
            "--launcher",
            choices=["local", "slurm"],
            default="local",
            help="local: train the runs here, one after another (default); slurm: submit them as one job array "
            "through submitit, one array task per run (a probing protocol: per protocol), and return",
        )
        launch.add_argument("--partition", help="the Slurm partition (default: the cluster's)")
        launch.add_argument(
            "--max-parallel", type=positive_int, help=f"array tasks running at once (default {slurm.MAX_PARALLEL})"
        )
        launch.add_argument(
            "--time-min",
            type=positive_int,
            help=f"each job's time limit in minutes (default {slurm.TIME_MIN}); a run that needs longer is requeued before the "
            "limit and resumes from its checkpoint_last.pt",
        )
        launch.add_argument("--cpus-per-run", type=positive_int, help=f"CPUs per run (default {slurm.CPUS_PER_RUN})")
        launch.add_argument(
            "--gpus-per-run", type=non_negative_int, help="GPUs per run (default: --num-gpus; 0 with --cpu)"
        )
        launch.add_argument("--mem-gb", type=positive_int, default=None, help="memory per run (default: the cluster's)")
        launch.add_argument(
            "--slurm-set",
            action="append",
            type=slurm.slurm_set,
            metavar="KEY=VALUE",
            help="any other sbatch option, e.g. account=myproj or qos=high or constraint=volta32gb (repeatable)",
        )
        launch.add_argument(
            "--wait",
            action="store_true",
            help="block until every job has ended (a requeued job's later executions included), printing each "
            "run's state changes; exit 0 only if every asked run has its record",
        )
        launch.add_argument("--poll-every", type=float, default=10.0, help=argparse.SUPPRESS)  # --wait's poll (tests)

    glue_data = (
        "the folder of TASK-bin/ folders that preprocess/glue.sh GLUE_DIR ALL OUT writes (OUT); "
        "the run uses OUT/TASK-bin"
    )
    roberta = "the pretrained RoBERTa checkpoint to fine-tune (e.g. roberta.large/model.pt)"
    glue = sub.add_parser("glue", help="GLUE (Table 2)")
    glue.add_argument(
        "task",
        help="MNLI QNLI QQP SST-2 RTE MRPC CoLA STS-B, or make demo's WN-POS WN-LEX WN-DEF WN-BSHIFT (or the "
        "config name, e.g. sst_2)",
    )
    common(glue, catalog.FAMILY_METHODS["glue"], "1-10", glue_data, roberta)
    xnli = sub.add_parser("xnli", help="XNLI zero-shot (Table 3)")
    common(
        xnli,
        catalog.FAMILY_METHODS["xnli"],
        "1-5",
        "the folder preprocess/xnli.sh writes (MNLI train/valid and test_LANG splits)",
        "the pretrained XLM-R checkpoint to fine-tune (e.g. xlmr.large/model.pt)",
    )
    xnli.add_argument("--languages", nargs="+", choices=catalog.XNLI_LANGUAGES, help="test languages (default: all 15)")
    summ = sub.add_parser("summarization", help="BART summarisation (Table 4)")
    summ.add_argument(
        "dataset",
        choices=tuple(catalog.SUMMARIZATION),
        help="the dataset (its config: configs/summarization/DATASET.yaml)",
    )
    common(
        summ,
        catalog.FAMILY_METHODS["summarization"],
        "1",
        "the folder preprocess/summarization.sh DATASET RAW OUT writes (OUT, with dict.source.txt)",
        "the pretrained BART checkpoint to fine-tune (e.g. bart.large/model.pt)",
    )
    summ.add_argument("--encoder-json", required=True, help="GPT-2 BPE encoder.json (to decode the generations)")
    summ.add_argument("--vocab-bpe", required=True, help="GPT-2 BPE vocab.bpe")
    summ.add_argument("--reference", help="reference summaries (default: the decoded targets of --gen-subset)")
    summ.add_argument(
        "--gen-subset", default="test", help="the split fairseq-generate summarises and ROUGE scores (default: test)"
    )
    summ.add_argument(
        "--gen-batch-size", type=positive_int, default=32, help="sentences per batch in fairseq-generate (default 32)"
    )
    summ.add_argument(
        "--rouge-backend",
        choices=["perl", "python"],
        default="perl",
        help="rxf-rouge's scorer: perl = the official ROUGE-1.5.5 (the paper's numbers), python = "
        "Google's rouge-score (no Perl needed; close to, not equal to, perl)",
    )
    state = sub.add_parser(
        "status",
        help="the state of every run folder under SAVE_ROOT: done, running, queued, failed or interrupted",
        description=status.__doc__,
        formatter_class=argparse.RawDescriptionHelpFormatter,
    )
    state.add_argument("save_root", metavar="SAVE_ROOT", help="the --save-root of the runs")
    probe = sub.add_parser("probe", help="representational-collapse probing (Figures 3-5)")
    probe.add_argument(
        "protocol",
        choices=["generalisation", "degradation", "retention"],
        help="Section 4's protocols: generalisation (Figure 3), degradation (4), retention (5)",
    )
    common(probe, ("std", "std++", "r3f", "r4f", "fast-r3f", "smart", "none"), "1-3", glue_data, roberta)
    probe.add_argument("--cycles", type=positive_int, default=3, help="retention: cycles of the chain (default 3)")
    probe.add_argument(
        "--source-task",
        type=task_config,
        default="SST-2",
        help="generalisation: the task fine-tuned on before the probes (default the paper's SST-2; make demo: WN-POS)",
    )
    probe.add_argument(
        "--probe-fit",
        choices=["trained", "cached"],
        default="trained",
        help="how each linear probe is fit: trained by fairseq-train as the paper's (default), or cached: the frozen "
        "encoder's features computed once and the layer fit by L-BFGS (python -m rxf_repro.probe_features)",
    )
    probe.add_argument(
        "--probe-tasks", nargs="+", type=task_config, help="generalisation: tasks to probe (default the paper's six)"
    )
    probe.add_argument(
        "--chain",
        nargs="+",
        type=task_config,
        help="degradation/retention: the task chain, source first (default the paper's SST-2 QNLI QQP RTE)",
    )
    probe.add_argument(
        "--probe-set",
        action="append",
        metavar="KEY=VALUE",
        help="Hydra override for the linear probes only (--set applies to fine-tuning and probes, "
        "except its criterion.* keys, which are the method's)",
    )
    return parser


SLURM_ONLY = ("partition", "max_parallel", "time_min", "cpus_per_run", "gpus_per_run", "mem_gb", "slurm_set", "wait")


def main(argv: Optional[Sequence[str]] = None, only: Optional[str] = None) -> int:
    """rxf-run. ``only`` (a unit's folder): run that unit here and nothing else, whatever ``--launcher`` says (what a
    Slurm array task does, ``rxf_repro/slurm.py``)."""
    given = list(sys.argv[1:] if argv is None else argv)
    argv, extra = given, []
    if "--" in argv:
        argv, extra = argv[: argv.index("--")], argv[argv.index("--") + 1 :]
    parser = build_parser()
    args = parser.parse_args(argv)
    if args.family == "status":
        return status.main(args.save_root)
    args.fairseq_args = extra
    if args.cpu:
        args.fp16 = False
    if args.launcher == "local" and only is None:
        given_slurm = [o for o in SLURM_ONLY if getattr(args, o) not in (None, False, [])]
        if given_slurm:
            parser.error(f"--{given_slurm[0].replace('_', '-')} is for --launcher slurm")
    slurm_plan: Optional[List[Planned]] = [] if args.launcher == "slurm" and only is None else None
    runner = Runner(args, plan=slurm_plan, only=only)
    process.exit_on_sigterm()
    started = time.time()
    try:
        check_overrides(args.set or [])
        check_overrides(getattr(args, "probe_set", None) or [], "--probe-set")
        code = getattr(runner, f"run_{args.family}")()
        if slurm_plan is not None:
            return slurm.submit(args, given, slurm_plan)
        if only is not None and not runner.executor.only_seen:
            raise RunError(f"{only}: not among the runs these arguments give (were configs/ changed since submitting?)")
    except (RunError, records.RecordError) as error:
        print(f"rxf-run: error: {error}", file=sys.stderr)
        return 1
    except KeyboardInterrupt:
        print(
            "rxf-run: interrupted; running the same command again resumes from each run's checkpoint_last.pt",
            file=sys.stderr,
        )
        return 130
    if not args.dry_run:
        log(runner.executor.summary(started, args.save_root))
    return code


if __name__ == "__main__":
    sys.exit(main())
