"""What ``rxf-run`` runs for each family (GLUE, XNLI, summarisation) and for the probing protocols: the composed
config of every (setting, seed) as a ``RunSpec``, handed to the ``Executor`` (``rxf_repro/execution.py``)."""

import argparse
import copy
import functools
import os
import sys
from typing import Any, Callable, Dict, Iterator, List, Optional, Sequence, Tuple

from rxf_repro import catalog, configs, evaluation, protocols, records, slurm
from rxf_repro.cli import UserError
from rxf_repro.commands import USER_DIR, check_with_fairseq, hparams, hydra_quote, settings, train_command
from rxf_repro.execution import PROBE_FEATURES, Executor, Planned, RunSpec, fairseq_tool, resuming


class Runner:
    """rxf-run's options, and one ``run_*`` method per family."""

    def __init__(self, args: argparse.Namespace, plan: Optional[List[Planned]] = None, only: Optional[str] = None):
        self.args = args
        self.executor = Executor(
            dry_run=args.dry_run,
            force=args.force,
            tiny=args.tiny,
            progress_every=args.progress_every,
            in_process=args.in_process and args.num_gpus == 1,  # a multi-GPU run spawns its workers afresh anyway
            plan=plan,
            only=only,
            on_unit=slurm.claim if only else None,
        )
        self._composed: Dict[Tuple, Any] = {}

    def compose(
        self, family: str, name: str, method: str, data: str, user: Optional[Sequence[str]] = None, restore: str = ""
    ) -> Tuple[Dict[str, Any], Dict[str, List[str]]]:
        """(config, grid) with the overrides every run gets, then ``user`` (default ``--set``). Cached (a compose costs
        ~0.6 s): the data and the checkpoint (``restore``, default ``--checkpoint``) are set in a copy."""
        a = self.args
        over = [f"common.user_dir={hydra_quote(USER_DIR)}"]
        if a.cpu or not a.fp16:
            over += ["common.cpu=true", "common.fp16=false"] if a.cpu else ["common.fp16=false"]
        over += (a.set or []) if user is None else user
        # ``++``: set a key the YAML may not name (a plain compose knows the files' keys, not fairseq's schema)
        key = (family, name, method, tuple(o if o[:1] in "+~" else "++" + o for o in over), a.config_dir)
        if key not in self._composed:
            self._composed[key] = configs.compose(family, name, method, list(key[3]), a.config_dir)
        cfg, grid = copy.deepcopy(self._composed[key])
        cfg.setdefault("task", {})["data"] = data
        cfg.setdefault("checkpoint", {})["restore_file"] = restore or a.checkpoint
        return cfg, grid

    def check_inputs(self, data: str, expect: str, made_by: str) -> None:
        """Before a real run: the data and the pretrained checkpoint exist (a typo would fail minutes later)."""
        if self.args.dry_run:
            return
        if not os.path.isfile(os.path.join(data, expect)):
            raise UserError(f"--data {data}: no {expect} there; make the data with {made_by}")
        if not os.path.isfile(self.args.checkpoint):
            raise UserError(f"--checkpoint {self.args.checkpoint}: no such file (the pretrained model.pt)")

    def check_glue_inputs(self, names: Sequence[str]) -> None:
        made_by = f"preprocess/glue.sh GLUE_DIR ALL {self.args.data} (--data is the folder of TASK-bin/)"
        for name in sorted(set(names)):
            self.check_inputs(self.glue_data(name), os.path.join("input0", "dict.txt"), made_by)

    def glue_data(self, name: str) -> str:
        return os.path.join(self.args.data, f"{catalog.TASKS[name]}-bin")

    def spec(
        self, label: str, cfg: Dict[str, Any], run_dir: str, fields: Dict[str, Any], evaluate, module=None, **more
    ):
        """A run of ``cfg`` in ``run_dir`` by fairseq-train, or by ``python -m MODULE`` taking the same arguments."""
        a = self.args
        argv = train_command(cfg)
        check_with_fairseq(tuple(argv + a.fairseq_args))
        argv += ["--seed", str(fields["seed"]), "--save-dir", run_dir]
        if "--log-format" not in argv:  # the records are read from fairseq's JSON log lines
            argv += ["--log-format", "json"]
        if a.num_gpus > 1:
            argv += ["--distributed-world-size", str(a.num_gpus)]
        last = os.path.join(run_dir, "checkpoint_last.pt")
        if os.path.exists(last) and not a.force:  # shown so by --dry-run; the executor decides with the lock held
            argv = resuming(argv, last)
        train = ([sys.executable, "-m", module] if module else fairseq_tool("train")) + argv + a.fairseq_args
        return RunSpec(label=label, run_dir=run_dir, train=train, cfg=cfg, fields=fields, evaluate=evaluate, **more)

    def settings_of(
        self, family: str, name: str, data: str
    ) -> Iterator[Tuple[Dict[str, Any], Dict[str, Any], str, List[str]]]:
        """(config, hparams, folder tag, overrides) of each setting the options ask for: the method's grid with
        ``--sweep``, else the config's own (with ``--set``)."""
        a = self.args
        _, grid = self.compose(family, name, a.method, data)
        for setting in settings(grid, a.sweep):
            over = [f"++{k}={v}" for k, v in setting.items()]
            cfg, _ = self.compose(family, name, a.method, data, [*(a.set or []), *over])
            found = hparams(cfg, grid)
            yield cfg, found, ",".join(f"{k}={v}" for k, v in found.items()) or "default", over

    def run_all(self, family: str, name: str, data: str, task: str, evaluation_of: Callable) -> None:
        """Each (setting, seed) in ``SAVE_ROOT/FAMILY/NAME/METHOD/SETTING/seedN``: its record's ``task``, its label
        ``[FAMILY] TASK METHOD SETTING seed N``, its ``(evaluate, shown commands) = evaluation_of(cfg, run_dir)``."""
        a = self.args
        shown = "" if family == "xnli" else f"{task} "
        for cfg, found, tag, _ in self.settings_of(family, name, data):
            for seed in a.seeds:
                run_dir = os.path.join(a.save_root, family, name, a.method, tag, f"seed{seed}")
                fields = dict(kind=family, task=task, method=a.method, seed=seed, hparams=found)
                label = f"[{family}] {shown}{a.method} {found or ''} seed {seed}"
                evaluate, commands = evaluation_of(cfg, run_dir)
                self.executor.run(self.spec(label, cfg, run_dir, fields, evaluate, shown=commands))

    def run_glue(self) -> None:
        """GLUE (Table 2): the metrics of the best validation."""
        name = self.args.task
        self.check_glue_inputs([name])
        task = catalog.TASKS[name]
        self.run_all("glue", name, self.glue_data(name), task, lambda *_: (evaluation.validation_metrics, []))

    def run_xnli(self) -> None:
        """XNLI (Table 3): fine-tuned on English MNLI, tested on the 15 languages."""
        a = self.args
        made_by = f"preprocess/xnli.sh MNLI_DIR XNLI_DIR {a.data} --sentencepiece-model ... --dict ..."
        self.check_inputs(a.data, os.path.join("input0", "dict.txt"), made_by)
        self.run_all("xnli", "xnli", a.data, "XNLI", functools.partial(evaluation.xnli, a))

    def run_summarization(self) -> None:
        """Summarisation (Table 4): generation with the dataset's decoding settings, then ROUGE."""
        a = self.args
        made_by = f"preprocess/summarization.sh {a.dataset} RAW_DIR {a.data} (run_scripts/summarization.sh reads "
        self.check_inputs(a.data, "dict.source.txt", made_by + "SUMM_BIN/DATASET-bin)")
        self.run_all("summarization", a.dataset, a.data, a.dataset, functools.partial(evaluation.summarization, a))

    def run_probe(self) -> None:
        """The protocol's plan (``protocols.plan``) for each setting and seed, in its own folder
        ``SAVE_ROOT/probing/PROTOCOL/METHOD/SETTING/seedN``: one unit, each step starting from the one before."""
        a = self.args
        if a.method == catalog.PRETRAINED:
            if a.protocol != "generalisation":
                what = "probes of the pretrained model, no fine-tuning"
                raise UserError(f"method none ({what}) is for the generalisation protocol, not {a.protocol}")
            if a.sweep or any(o.lstrip("+~").startswith("criterion.") for o in a.set or []):
                raise UserError("method none fine-tunes nothing: --sweep and --set criterion.* do not apply")
            chosen = [({}, "default", [])]
        else:
            first = a.source_task if a.protocol == "generalisation" else (a.chain or catalog.PROBE_CHAIN)[0]
            chosen = [s[1:] for s in self.settings_of("glue", first, self.glue_data(first))]
        units = []
        options = dict(source=a.source_task, probes=a.probe_tasks, chain=a.chain, cycles=a.cycles)
        for found, tag, over in chosen:
            for seed in a.seeds:
                root = os.path.join(a.save_root, "probing", a.protocol, a.method, tag, f"seed{seed}")
                steps = protocols.Steps(root, a.set or [], over, a.probe_set or [])
                units.append((root, seed, found, protocols.plan(a.protocol, a.method, steps, a.checkpoint, **options)))
        self.check_glue_inputs([step.task for *_, plan in units for step in plan])
        for root, seed, found, plan in units:
            with self.executor.unit(root) as mine:
                if mine:
                    for step in plan:
                        self.executor.run(self.step_spec(step, seed, found))

    def step_spec(self, step: protocols.Step, seed: int, setting: Dict[str, Any]) -> RunSpec:
        """A protocol step as a run; a probe's record carries the fine-tuning ``setting`` of the encoder it probed."""
        a = self.args
        task = catalog.TASKS[step.task]
        method = "probe" if step.action == "probe" else a.method
        cfg, grid = self.compose("glue", step.task, method, self.glue_data(step.task), step.overrides, step.restore)
        fields = dict(kind="glue", task=task, method=a.method, seed=seed, hparams=hparams(cfg, grid))
        if step.action == "probe":
            fields.update(kind="probe", hparams=setting, probe=step.probe, probed_checkpoint=step.restore)
            label = f"[probe] probe {task} on the encoder of {step.restore}"
            # cached: the same probe, fit on the frozen encoder's features computed once
            module = PROBE_FEATURES if a.probe_fit == "cached" else None
            return self.spec(label, cfg, step.run_dir, fields, evaluation.validation_metrics, module=module)
        label = f"[probe] fine-tune {task} with {a.method} (seed {seed}) from {step.restore}"
        chained = dict(record_name=records.STEP_RECORD_NAME, keep_last=False) if step.chained else {}
        return self.spec(label, cfg, step.run_dir, fields, evaluation.validation_metrics, **chained)
