"""The paper's Section 4 probing protocols as plans: the ordered steps of one protocol run, made without running
anything (``rxf-run probe`` runs them, ``families.Runner.run_probe``; the probe itself: ``rxf/probing.py``).

generalisation (Figure 3): fine-tune the source task (SST-2) from the pretrained model, then probe each other task on
its encoder. degradation (Figure 4): fine-tune SST-2 -> QNLI -> QQP -> RTE, each from the one before, probing SST-2
after every step. retention (Figure 5): that chain for several cycles, probing each task before it is fine-tuned
again (the first probe of SST-2 is of the pretrained model). Method ``none`` (``pretrained``): the generalisation
probes of the pretrained model itself, the reference that collapse is measured from.
"""

import os
from dataclasses import dataclass
from typing import Any, Dict, List, Optional, Sequence, Tuple

from rxf_repro import catalog, records


@dataclass(frozen=True)
class Step:
    """Fine-tune ``task`` (a config name) with the protocol's method, or fit a linear probe of the frozen encoder on
    it (``probe``: its record's field), from ``restore``. Not ``chained``: a fine-tune from the pretrained model, an
    ordinary GLUE run (``record.json``, Table 2); a chain step writes ``finetune.json``, keeping only its best."""

    action: str  # "finetune" or "probe"
    task: str
    restore: str
    run_dir: str
    overrides: Tuple[str, ...]
    probe: Optional[Dict[str, Any]] = None
    chained: bool = True

    @property
    def best_checkpoint(self) -> str:
        return os.path.join(self.run_dir, "checkpoint_best.pt")


@dataclass(frozen=True)
class Steps:
    """Makes the steps of one protocol run in ``root``. Fine-tuning gets the user's overrides (``--set``), a head
    named after the task (so the step before's head is dropped, never reused) and the grid ``setting``. A probe
    trains with the stock criterion: it gets ``--set`` without the method's ``criterion.*``, then ``probe_set``."""

    root: str
    user: Sequence[str] = ()
    setting: Sequence[str] = ()
    probe_set: Sequence[str] = ()

    def finetune(self, task: str, restore: str, folder: str, chained: bool = True) -> Step:
        head = f"++criterion.classification_head_name={task}_head"
        run_dir = os.path.join(self.root, folder)
        return Step("finetune", task, restore, run_dir, (*self.user, head, *self.setting), chained=chained)

    def probe(self, task: str, restore: str, folder: str, info: Dict[str, Any]) -> Step:
        user = [o for o in self.user if not o.lstrip("+~").startswith("criterion.")]
        return Step("probe", task, restore, os.path.join(self.root, folder), (*user, *self.probe_set), info)


def generalisation(steps: Steps, checkpoint: str, source: str, probes: Sequence[str]) -> List[Step]:
    name = catalog.TASKS[source]
    tuned = steps.finetune(source, checkpoint, f"finetune-{name}", chained=False)
    info = records.probe_info("generalisation", [name], finetuned_on=name)
    return [tuned, *(steps.probe(t, tuned.best_checkpoint, f"probe-{catalog.TASKS[t]}", info) for t in probes)]


def degradation(steps: Steps, checkpoint: str, chain: Sequence[str]) -> List[Step]:
    names = [catalog.TASKS[t] for t in chain]
    plan: List[Step] = []
    current = checkpoint
    for step, task in enumerate(chain):
        tuned = steps.finetune(task, current, f"step{step}-{names[step]}")
        info = records.probe_info("degradation", names, step, finetuned_on=names[step])
        current = tuned.best_checkpoint
        plan += [tuned, steps.probe(chain[0], current, f"step{step}-probe-{names[0]}", info)]
    return plan


def retention(steps: Steps, checkpoint: str, chain: Sequence[str], cycles: int) -> List[Step]:
    names = [catalog.TASKS[t] for t in chain]
    plan: List[Step] = []
    current, last = checkpoint, "pretrained"
    for cycle in range(1, cycles + 1):
        for step, task in enumerate(chain):
            where = f"cycle{cycle}-step{step}"
            info = records.probe_info("retention", names, step, cycle, finetuned_on=last)
            tuned = steps.finetune(task, current, os.path.join(where, f"finetune-{names[step]}"))
            plan += [steps.probe(task, current, os.path.join(where, f"probe-{names[step]}"), info), tuned]
            current, last = tuned.best_checkpoint, names[step]
    return plan


def pretrained(steps: Steps, checkpoint: str, source: str, probes: Sequence[str]) -> List[Step]:
    info = records.probe_info("generalisation", [], finetuned_on=catalog.PRETRAINED, source=catalog.TASKS[source])
    return [steps.probe(t, checkpoint, f"probe-{catalog.TASKS[t]}", info) for t in probes]


def plan(
    protocol: str, method: str, steps: Steps, checkpoint: str, *, source: str, probes=None, chain=None, cycles: int = 3
) -> List[Step]:
    """The steps of ``protocol`` with ``method`` from the pretrained ``checkpoint``, in the order they run: the
    paper's probed tasks and chain unless ``probes`` and ``chain`` (config names) say otherwise."""
    chain = chain or catalog.PROBE_CHAIN
    if method == catalog.PRETRAINED:
        return pretrained(steps, checkpoint, source, probes or [source, *catalog.GENERALISATION_PROBES])
    if protocol == "generalisation":
        return generalisation(steps, checkpoint, source, probes or catalog.GENERALISATION_PROBES)
    if protocol == "degradation":
        return degradation(steps, checkpoint, chain)
    return retention(steps, checkpoint, chain, cycles)
