"""``make demo``: the paper's claims tested in miniature on a CPU, with a real pretrained encoder and real English
(docs/demo.md): all-MiniLM-L6-v2 (a 6-layer, 384-wide BERT, not RoBERTa-large) fine-tuned on WN-POS and probed on
WN-LEX, WN-DEF and WN-BSHIFT (tasks built from WordNet 3.0) by the paper's generalisation protocol, a regularised
method's lambda chosen on dev on one seed by rxf-report's rule; then rxf-report and one table per claim of the paper,
with 95% intervals over seeds and the verdict they allow (printed, and written to summary.md and summary.json); and
one more: does R3F's noise matter (R3F against R3F without noise, paired by seed)?
"""

import argparse
import json
import logging
import operator
import os
import statistics
import sys
import time
import warnings
from dataclasses import dataclass, field
from typing import Any, Callable, Dict, List, Optional, Sequence, Tuple

from rxf_repro import attempts, catalog, claims, cli, configs, execution, outputs, process, records, selection, tables
from rxf_repro.execution import log
from rxf_repro.records import Record

NAME = catalog.METHOD_NAMES
PAIRED = "paired by seed [95% CI]"
TERMS = {"train_symm_kl": 1.0, "train_rdrop_kl": 2.0}  # fairseq's train lines: the term, and its scale to symm_kl's


def load_preset(name: str) -> Dict[str, Any]:
    """``configs/demo.yaml``'s ``default``, with the named preset's keys over it."""
    data = configs.read_yaml(os.path.join(configs.config_root(), "demo.yaml"))
    return dict(data["default"], **data[name])


def run_tool(name: str, main: Callable[[List[str]], int], argv: List[str]) -> None:
    """One of the project's own commands, in this process; it prints its own error, which ends the demo."""
    code = main(argv)
    if code != 0:
        raise cli.UserError(f"{name} failed (exit {code}); its error is above")


def prepare_inputs(out: str, preset: Dict, wordnet_dir: str, seed: int) -> Tuple[str, str, Dict[str, float], float]:
    """(encoder checkpoint, binarized tasks' folder, dev majority baselines, the import's error vs transformers)."""
    from rxf_repro import hf_import
    from rxf_repro.data import glue, wordnet

    encoder = os.path.join(out, "encoder")
    log(f"[1/5] importing {preset['encoder']} with rxf-import-hf")
    run_tool("rxf-import-hf", hf_import.main, [preset["encoder"], encoder])
    parity = outputs.read_note(encoder, "import.json")["parity"]["max_abs_diff"]
    log(f"    largest difference of the last hidden states from transformers': {parity:.1e}")
    tsv, glue_bin = os.path.join(out, "data", "wordnet"), os.path.join(out, "data", "glue-bin")
    sizes = preset["sizes"]
    log(f"[2/5] WordNet tasks from {wordnet_dir}: {sizes['train']} train / {sizes['dev']} dev each (seed {seed})")
    argv = [tsv, "--wordnet-dir", wordnet_dir, "--train", str(sizes["train"]), "--dev", str(sizes["dev"])]
    run_tool("preprocess/wordnet.sh", wordnet.main, argv + ["--seed", str(seed)])
    vocab, dictionary = os.path.join(encoder, "vocab.txt"), os.path.join(encoder, "dict.txt")
    for task in tasks_of(preset):
        argv = [tsv, task, os.path.join(glue_bin, f"{task}-bin"), "--wordpiece-vocab", vocab, "--dict", dictionary]
        run_tool("preprocess/glue.sh", glue.main, argv)
    summary = outputs.read_note(tsv, "summary.json")["tasks"]
    baselines = {task: summary[task]["dev"]["majority_baseline"] for task in tasks_of(preset)}
    return os.path.join(encoder, "model.pt"), glue_bin, baselines, parity


def tasks_of(preset: Dict) -> List[str]:
    return [preset["finetune_task"], *preset["probe_tasks"]]


def protocols_of(preset: Dict, method: str) -> List[str]:
    """A method the preset compares with R3F alone (``versus_r3f``) is fine-tuned (``rxf-run glue``), not probed."""
    return ["finetune"] if method in preset["versus_r3f"] else preset["protocols"]


def schedule(preset: Dict, protocols: Sequence[str], method: str, seeds: Sequence[int]) -> List[Tuple[str, int]]:
    """(protocol, seed) of a method's runs: chain protocols only for the preset's ``chain_methods`` (default: all)."""
    chained = method in preset.get("chain_methods", [method])
    return [(p, seed) for p in protocols if p in ("generalisation", "finetune") or chained for seed in seeds]


@dataclass
class Job:
    """One ``rxf-run probe``: a protocol for one method and seed, ``setting`` (a lambda of the grid) as ``--set``."""

    protocol: str
    method: str
    seed: int
    setting: Dict[str, Any] = field(default_factory=dict)

    def label(self) -> str:
        what = "pretrained encoder probed" if self.method == catalog.PRETRAINED else NAME[self.method]
        setting = "".join(f", {key.split('.')[-1]} {value}" for key, value in self.setting.items())
        return f"{what} ({self.protocol}, seed {self.seed}{setting})"

    def argv(self, preset: Dict, glue_bin: str, checkpoint: str) -> List[str]:
        family, first = ("glue", preset["finetune_task"]) if self.protocol == "finetune" else ("probe", self.protocol)
        command = [family, first, self.method, "--data", glue_bin, "--checkpoint", checkpoint]
        command += ["--seeds", str(self.seed), "--save-root", "runs", "--cpu", "--tiny"]
        if self.protocol == "generalisation":
            probes = tasks_of(preset) if self.method == catalog.PRETRAINED else preset["probe_tasks"]
            command += ["--probe-fit", "cached", "--source-task", preset["finetune_task"], "--probe-tasks", *probes]
        elif family == "probe":
            command += ["--probe-fit", "cached", "--chain", *preset["chain"], "--cycles", str(preset["cycles"])]
        overrides = preset["overrides"] + preset["method_overrides"].get(self.method, [])
        overrides += [f"{key}={value}" for key, value in self.setting.items()]
        return command + [arg for override in overrides for arg in ("--set", override)]

    def cost(self) -> float:
        """Rough relative cost, to start the longest first."""
        if self.method == catalog.PRETRAINED:
            return 0.2
        chained = self.protocol in ("degradation", "retention")
        return (3.0 if chained else 1.0) * (1.0 if self.method in ("std", "std++") else 2.0)


def plan(preset: Dict, grids: Dict[str, Tuple[str, list]]) -> List[Job]:
    """The runs that start at once, on the selection seed: the pretrained encoder's probes and each method's (key,
    values) grid."""
    seed = preset["selection"]["seed"]
    jobs = [Job(protocols_of(preset, m)[0], m, seed, {key: v}) for m, (key, values) in grids.items() for v in values]
    return [Job("generalisation", catalog.PRETRAINED, seed), *jobs]


def plan_chosen(preset: Dict, methods: Sequence[str], seeds: Sequence[int], chosen: Dict[str, Dict]) -> List[Job]:
    """Every other run of ``methods``: a gridded method's with its chosen value (once chosen), a method compared with R3F
    without a grid of its own (R3F's controls) with R3F's, a method without a grid (Standard) as it is."""
    jobs = []
    for m in methods:
        choice = chosen.get(m) or (m in preset["versus_r3f"] and chosen.get("r3f"))
        setting, protocols = {choice["key"]: choice["value"]} if choice else {}, protocols_of(preset, m)
        done = (protocols[0], preset["selection"]["seed"]) if m in chosen else None  # run by the grid
        jobs += [Job(p, m, s, setting) for p, s in schedule(preset, protocols, m, seeds) if (p, s) != done]
    return jobs


def run_jobs(
    jobs: List[Job], preset: Dict, glue_bin: str, checkpoint: str, out: str, parallel: int, then: Callable = list
) -> None:
    """Every job as its own rxf-run (``rxf_repro.runs.main`` in a fork of this process, fairseq imported already),
    ``parallel`` at a time, one CPU thread each; the longest first."""
    from rxf_repro import runs

    os.makedirs(os.path.join(out, "logs"), exist_ok=True)
    glue_bin, checkpoint = os.path.relpath(glue_bin, out), os.path.relpath(checkpoint, out)
    env = dict(os.environ, OMP_NUM_THREADS="1", MKL_NUM_THREADS="1") if parallel > 1 else dict(os.environ)
    for module in ("fairseq_cli.train", execution.PROBE_FEATURES, "rxf_fairseq"):
        execution.preload(module)
    pending, running = sorted(jobs, key=Job.cost, reverse=True), {}
    with process.children() as started:  # an error, Ctrl-C or SIGTERM stops every run still going
        while pending or running:
            while pending and len(running) < parallel:
                job = pending.pop(0)
                name = "-".join([job.protocol, job.method, f"seed{job.seed}", *map(str, job.setting.values())])
                path = os.path.join(out, "logs", f"{name}.log")
                with open(path, "w") as log_file:
                    argv = job.argv(preset, glue_bin, checkpoint)
                    proc = process.ForkedChild(runs.main, (argv,), output_fd=log_file.fileno(), cwd=out, env=env)
                started.append(proc)
                running[proc] = (job, path, time.time())
            time.sleep(0.5)
            for proc in [proc for proc in running if proc.poll() is not None]:
                job, path, began = running.pop(proc)
                if proc.returncode != 0:
                    with open(path) as log_file:
                        tail = log_file.read()[-3000:]
                    raise cli.UserError(
                        f"{job.label()} failed (exit {proc.returncode}); log: {os.path.relpath(path, out)} "
                        f"in the unfinished demo folder {out}, removed on exit:\n{tail}"
                    )
                done = len(jobs) - len(pending) - len(running)
                log(f"    {done}/{len(jobs)} {job.label()}: {time.time() - began:.0f} s")
                more = then(job)  # the runs this one's end makes possible
                jobs += more
                pending = sorted(pending + more, key=Job.cost, reverse=True)


def report_setting(found: List[Record], method: str) -> selection.Selection:
    """The setting rxf-report's Table 2 shows for a method: the grid's choice, then that setting run on every seed."""
    (entry,) = selection.glue_results([r for r in found if r.kind == "glue" and r.method == method], with_paper=False)
    return entry.selection


def choose(out: str, grids: Dict[str, Tuple[str, list]], seed: int) -> Dict[str, Dict[str, Any]]:
    """{method: {key, value, scores: {value: dev accuracy}}}: each grid's choice on ``seed`` by rxf-report's rule."""
    found = [r for r in records.read_records([os.path.join(out, "runs")]) if r.seed == seed and r.kind == "glue"]
    chosen = {}
    for m, (key, _) in grids.items():
        name = key.split(".")[-1]
        scores = dict(sorted((r.hparams[name], r.metrics["accuracy"]) for r in found if r.method == m))
        chosen[m] = {"key": key, "value": report_setting(found, m).hparams[name], "scores": scores}
        log(f"    {NAME[m]}: {name} = {chosen[m]['value']} chosen (dev accuracy {scores})")
    return chosen


def stopped_improving(valid_curve: Optional[List[List[float]]]) -> Optional[bool]:
    """Whether a run had converged: its last validation no higher than an earlier one (a tie counts: fairseq's
    checkpoint_best.pt is the *last* validation reaching the best); None without two validations."""
    curve = [value for _, value in valid_curve or []]
    return max(curve[:-1]) >= curve[-1] if len(curve) > 1 else None


def training_term(record: Record) -> Optional[float]:
    """The unweighted consistency term (R3F's ``symm_kl``; R-Drop's ``rdrop_kl``, half that, doubled) a run logged,
    averaged over epochs, from its train.log (records keep no training metrics); None for a method without one."""
    logged = attempts.read_log(os.path.join(os.path.dirname(record.path), "train.log"))
    epochs = [r for attempt in logged for r in attempts.json_log(attempt.lines, "train")]
    terms = [float(r[key]) * scale for r in epochs for key, scale in TERMS.items() if key in r]
    return statistics.fmean(terms) if terms else None


def collect(kept: List[Record], preset: Dict, methods: Sequence[str]) -> Dict[str, Dict]:
    """{method: {finetune_task: {seed: acc}, "probes": {task: {seed: acc}}, "train_wall_s": {seed: s}, ...}} from
    the records of each method's chosen setting, and ``none``: the pretrained encoder's probes."""

    def probes(method: str, tasks: Sequence[str]) -> Dict[str, Dict[int, float]]:
        found = [r for r in kept if r.kind == "probe" and r.method == method and r.probe.protocol == "generalisation"]
        return {t: {r.seed: r.metrics["accuracy"] for r in found if r.task == t} for t in tasks}

    numbers = {}
    for method in methods:
        tuned = [r for r in kept if r.kind == "glue" and r.method == method]
        numbers[method] = {
            preset["finetune_task"]: {r.seed: r.metrics["accuracy"] for r in tuned},
            "probes": probes(method, [] if method in preset["versus_r3f"] else preset["probe_tasks"]),
            "train_wall_s": {r.seed: r.train_wall_s for r in tuned},
            "best_update": {r.seed: r.best_update for r in tuned},
            "max_update": {r.seed: execution.max_update_of(r.command) for r in tuned},
            "stopped_improving": {r.seed: stopped_improving(r.valid_curve) for r in tuned},
            "train_term": {r.seed: term for r in tuned if (term := training_term(r)) is not None},
        }
    numbers[catalog.PRETRAINED] = {"probes": probes(catalog.PRETRAINED, tasks_of(preset))}
    return numbers


def values(by_seed: Dict[int, float]) -> List[float]:
    return [by_seed[s] for s in sorted(by_seed)]


def mean(by_seed: Dict[int, float], digits: int = 1) -> str:
    return claims.text(claims.mean_interval(values(by_seed)), digits, signed=False) if by_seed else "-"


def claim_tables(numbers: Dict, preset: Dict, methods: Sequence[str], baselines: Dict[str, float]) -> Tuple[str, Dict]:
    """The four tables (Markdown) and the verdicts (JSON-able); the first method is the reference."""
    task, probes, reference = preset["finetune_task"], preset["probe_tasks"], methods[0]
    ref, ref_name, paired = numbers[reference], NAME[reference], PAIRED
    collapse: Dict[str, Dict] = {"standard_collapses": {}, "less_than_standard": {}}
    verdicts: Dict[str, Any] = {"accuracy": {}, "spread": {}, "collapse": collapse, "time": {}}

    def spread(by_seed: Dict[int, float]) -> str:
        return f"{statistics.stdev(values(by_seed)):.2f}" if len(by_seed) > 1 else "-"

    acc_rows = [[ref_name, mean(ref[task]), "", ""]]
    spread_rows = [[ref_name, spread(ref[task]), "", ""]]
    less_rows, time_rows = [], [[ref_name, mean(ref["train_wall_s"], 0), ""]]
    for m in methods[1:]:
        mine = numbers[m]
        difference = claims.paired(mine[task], ref[task])
        ratio = claims.variance_ratio(values(mine[task]), values(ref[task]))
        better, steadier = claims.verdict(difference), claims.verdict(ratio, 1.0, higher_is_claimed=False)
        verdicts["accuracy"][m] = {"difference": claims.as_dict(difference), "verdict": better}
        verdicts["spread"][m] = {"variance_ratio": claims.as_dict(ratio), "verdict": steadier}
        acc_rows.append([NAME[m], mean(mine[task]), claims.text(difference), better])
        spread_rows.append([NAME[m], spread(mine[task]), claims.text(ratio, 2, signed=False), steadier])
        differences = [claims.paired(mine["probes"][t], ref["probes"][t]) for t in probes]
        kinds = [claims.verdict(difference) for difference in differences]
        collapse["less_than_standard"][m] = {"per_task": dict(zip(probes, kinds)), "verdict": claims.unanimous(kinds)}
        less_rows.append([NAME[m], *map(claims.text, differences), claims.unanimous(kinds)])
        ratio = claims.paired(mine["train_wall_s"], ref["train_wall_s"], operator.truediv)
        verdicts["time"][m] = {"ratio_to_reference": claims.as_dict(ratio)}
        time_rows.append([NAME[m], mean(mine["train_wall_s"], 0), claims.text(ratio, 2, signed=False) if ratio else ""])
    acc_rows.append(["majority baseline", f"{baselines[task]:.1f}", "", ""])
    for m in [m for m in ("r3f", "r4f") if m in methods and "smart" in methods]:
        difference = claims.paired(numbers[m]["train_wall_s"], numbers["smart"]["train_wall_s"])
        verdicts["time"].setdefault(m, {})["cheaper_than_smart"] = claims.verdict(difference, higher_is_claimed=False)

    pretrained = numbers[catalog.PRETRAINED]["probes"]
    before = {t: statistics.fmean(values(pretrained[t])) for t in probes if pretrained.get(t)}
    probe_rows = [[NAME[catalog.PRETRAINED], *(f"{before[t]:.1f}" if t in before else "-" for t in probes)]]
    for m in methods:
        cells = []
        for t in probes:
            after = values(numbers[m]["probes"][t])
            change = claims.mean_interval([v - before[t] for v in after]) if after and t in before else None
            cells.append(f"{statistics.fmean(after):.1f}, {claims.text(change)}" if change else "-")
            if change and m == reference:
                verdict = claims.verdict(change, higher_is_claimed=False)
                collapse["standard_collapses"][t] = {"change": claims.as_dict(change), "verdict": verdict}
        probe_rows.append([NAME[m], *cells])
    probe_rows.append(["majority baseline", *(f"{baselines[t]:.1f}" for t in probes)])
    sections = [
        f"### Claim 1: fine-tuning accuracy ({task}, dev, %) — the regularised methods match or beat {ref_name}",
        tables.md_table(["Method", f"{task} accuracy [95% CI]", f"minus {ref_name}, {paired}", "verdict"], acc_rows),
        f"### Claim 2: spread over seeds ({task}; the paper's Figure 2) — the regularised methods vary less",
        tables.md_table(["Method", "std over seeds", f"variance / {ref_name}'s [95% CI]", "verdict"], spread_rows),
        "### Claim 3: representational collapse — linear probes of the frozen encoder (dev, %), after fine-tuning minus before",
        tables.md_table(["Method", *(f"{t}: probe, change [95% CI]" for t in probes)], probe_rows),
        f"Probe accuracy minus {ref_name}'s, {paired} (the paper: higher, less collapse):",
        tables.md_table(["Method", *probes, "verdict"], less_rows),
        "### Claim 4: cost — fairseq's training time per fine-tuning run (s, one CPU thread)",
        tables.md_table(["Method", "seconds [95% CI]", f"/ {ref_name}'s, {paired}"], time_rows),
    ]
    return "\n\n".join(sections), verdicts


def versus_r3f_table(numbers: Dict, task: str, others: Sequence[str]) -> Tuple[str, Dict]:
    """Claim 5, not the paper's (docs/noise.md): R3F against methods with its consistency term but not its noise,
    paired by seed, with the term each logged in training and its ratio to R3F's (the share the noise makes)."""
    r3f, found = numbers["r3f"], {}
    rows = [[NAME["r3f"], mean(r3f[task]), "", "", mean(r3f["train_term"], 5), ""]]
    for m in others:
        mine = numbers[m]
        difference = claims.paired(r3f[task], mine[task])
        ratio = claims.paired(mine["train_term"], r3f["train_term"], operator.truediv)
        found[m] = {"r3f_minus": claims.as_dict(difference), "verdict": claims.verdict(difference)}
        found[m]["term_ratio_to_r3f"] = claims.as_dict(ratio)
        cells = [claims.text(difference), found[m]["verdict"], mean(mine["train_term"], 5)]
        rows.append([NAME[m], mean(mine[task]), *cells, claims.text(ratio, 2, signed=False)])
    alpha = ", R-Drop at its own alpha" if "rdrop" in others else ""
    heading = (
        f"### Claim 5: the noise matters — R3F beats the same term without it ({task}, dev, %; fine-tuned at R3F's "
        f"chosen lambda{alpha}, on the same seeds; not probed; the term is KL(P||Q) + KL(Q||P) per sentence)"
    )
    headers = [f"{task} accuracy [95% CI]", f"R3F minus it, {PAIRED}", "verdict", "term in training [95% CI]"]
    return f"{heading}\n\n" + tables.md_table(["Method", *headers, f"term / R3F's, {PAIRED}"], rows), found


def verdict_sentences(verdicts: Dict, numbers: Dict, preset: Dict, methods: Sequence[str]) -> List[str]:
    reference, task = NAME[methods[0]], preset["finetune_task"]

    def listed(found: Dict[str, Dict], label: Callable[[str], str] = NAME.get) -> str:
        return "; ".join(f"{label(key)}: {found[key]['verdict']}" for key in found)

    ratio = {m: v["ratio_to_reference"] for m, v in verdicts["time"].items() if v.get("ratio_to_reference")}
    cheaper = {m: v["cheaper_than_smart"] for m, v in verdicts["time"].items() if "cheaper_than_smart" in v}
    ratios = "; ".join(f"{NAME[m]} {r['value']:.2f}x" for m, r in ratio.items())
    smart = "; ".join(f"{NAME[m]} cheaper than SMART: {verdict}" for m, verdict in cheaper.items())
    no_smart = "the paper's comparison is with adversarial methods (SMART, FreeLB): SMART runs in the full preset only"
    collapse = verdicts["collapse"]
    versus = verdicts.get("versus_r3f", {})

    def vs_r3f(m: str) -> str:
        term = versus[m]["term_ratio_to_r3f"]
        return f"R3F vs {NAME[m]}" + (f" (its term in training {term['value']:.2f}x R3F's)" if term else "")

    return [
        f"1. Accuracy on {task}: {listed(verdicts['accuracy'], lambda m: f'{NAME[m]} vs {reference}')}.",
        f"2. Lower variance over seeds: {listed(verdicts['spread'])} (with {len(numbers[methods[0]][task])} seeds an F "
        "interval is wide).",
        f"3. {reference} fine-tuning lowers the probes (collapse): {listed(collapse['standard_collapses'], str)}. Less "
        f"collapse than {reference}: {listed(collapse['less_than_standard'])}.",
        f"4. Cost per run relative to {reference}: {ratios}; {smart or no_smart}.",
        *([f"5. The noise matters, R3F more accurate on {task}: {listed(versus, vs_r3f)}."] if versus else []),
    ]


def build_parser() -> argparse.ArgumentParser:
    parser = argparse.ArgumentParser(
        prog="rxf-demo", description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter
    )
    add = parser.add_argument
    add(
        "--out",
        default="demo_output",
        metavar="DIR",
        help="the output folder (default demo_output). Built beside DIR and renamed into place when "
        "done; an existing DIR is replaced only if it is an earlier rxf-demo output",
    )
    add("--overwrite", action="store_true", help="replace DIR (deleting its content) even if rxf-demo did not write it")
    add(
        "--preset",
        choices=("default", "quick", "full"),
        default="default",
        help="configs/demo.yaml's presets: default (Standard, R3F, R4F x 3 seeds, and R3F without noise against R3F, "
        "about 10 minutes on 2 cores), full (every method x 5 seeds; degradation and retention: Standard++ and R4F x "
        "5 seeds; R-Drop and same-mask R3F against R3F too), quick (the tests': tiny sizes, a few updates)",
    )
    add("--quick", action="store_const", const="quick", dest="preset", help="the same as --preset quick")
    add("--seeds", type=cli.positive_int, help="seeds per method (default: the preset's)")
    add(
        "--methods",
        nargs="+",
        choices=sorted(set(NAME) - {catalog.PRETRAINED}),
        help="fine-tuning methods, the first is the reference (default: the preset's)",
    )
    add("--jobs", type=cli.positive_int, default=2, help="runs in parallel, one CPU thread each (default 2)")
    add("--seed", type=int, default=1, help="seed of the WordNet tasks' splits (default 1)")
    add(
        "--wordnet-dir",
        default="/usr/share/wordnet",
        help="WordNet 3.0's database files (default /usr/share/wordnet: Debian's wordnet-base)",
    )
    return parser


def main(argv: Optional[List[str]] = None) -> int:
    args = build_parser().parse_args(argv)
    return cli.tool_main("rxf-demo", lambda: make_demo(args), interrupted=f"interrupted; {args.out} is as it was")


def make_demo(args: argparse.Namespace) -> None:
    if not os.path.isfile(os.path.join(args.wordnet_dir, "data.noun")):
        raise cli.UserError(
            f"--wordnet-dir {args.wordnet_dir}: no WordNet 3.0 database (data.noun); install it with: sudo apt-get "
            "install -y wordnet-base"
        )
    with outputs.output_folder(args.out, "rxf-demo", "demo", overwrite=args.overwrite, flag="--out") as work:
        text = run(args, work)
    print(text)
    print(
        f"Everything (encoder, data, logs, records, report/, summary.md, summary.json) is in {os.path.abspath(args.out)}"
    )


def run(args: argparse.Namespace, out: str) -> str:
    """The whole demo, written into ``out`` (a temporary folder that becomes ``--out`` at the end)."""
    logging.getLogger().setLevel(logging.WARNING)  # fairseq's INFO lines; each run keeps its full log
    warnings.filterwarnings("ignore", category=UserWarning)  # pin_memory without a GPU; Hydra's deprecations
    preset = load_preset(args.preset)
    task, methods, protocols = preset["finetune_task"], list(args.methods or preset["methods"]), preset["protocols"]
    seeds = list(range(1, (args.seeds or preset["seeds"]) + 1))
    started = time.time()
    log(f"rxf-demo ({args.preset} preset): working in {out} (renamed to {os.path.abspath(args.out)} when done)")
    checkpoint, glue_bin, baselines, parity = prepare_inputs(out, preset, args.wordnet_dir, args.seed)

    # compared with R3F on the fine-tuning task alone: only beside R3F, and never a method run in full already
    versus = preset["versus_r3f"] = [m for m in preset["versus_r3f"] if "r3f" in methods and m not in methods]
    selection_seed, grid = preset["selection"]["seed"], preset["selection"]["grid"]
    grids = {m: next(iter(grid[m].items())) for m in [*methods, *versus] if m in grid}  # method -> (key, values)
    chain = [p for p in protocols if p != "generalisation"]
    searched = ", ".join(f"{NAME[m]}'s {key.split('.')[-1]} from {values}" for m, (key, values) in grids.items())
    only = f" (and {task} only, against R3F: {', '.join(NAME[m] for m in versus)})" if versus else ""
    log(
        f"[3/5] fine-tune {task} and probe {', '.join(preset['probe_tasks'])}"
        f"{' (and ' + ', '.join(chain) + ')' if chain else ''}: {', '.join(NAME[m] for m in methods)}{only} x "
        f"{len(seeds)} seed(s); {searched or 'no setting'} chosen on dev on seed {selection_seed}; {args.jobs} run(s) "
        "at a time"
    )
    if chain:
        names = [NAME[m] for m in methods if m in preset.get("chain_methods", methods)]
        log(
            f"    {' and '.join(chain)} on {' -> '.join(preset['chain'])}, {preset['cycles']} cycle(s): "
            f"{', '.join(names) or 'none of the methods'} x {len(seeds)} seed(s)"
        )
    grid_left, chosen = {m: len(values) for m, (_, values) in grids.items()}, {}
    at_r3fs = [m for m in versus if m not in grids and "r3f" in grids]  # R3F's controls, at R3F's chosen lambda

    def then(job: Job) -> List[Job]:
        """A method's other runs once its grid has ended and its value is chosen: no round waits for another grid."""
        m = job.method
        if m not in grid_left or m in chosen:
            return []
        grid_left[m] -= 1
        if grid_left[m]:
            return []
        chosen.update(choose(out, {m: grids[m]}, selection_seed))
        return plan_chosen(preset, [m, *(at_r3fs if m == "r3f" else [])], seeds, chosen)

    ungridded = [m for m in [*methods, *versus] if m not in grids and m not in at_r3fs]
    jobs = plan(preset, grids) + plan_chosen(preset, ungridded, seeds, {})
    run_jobs(jobs, preset, glue_bin, checkpoint, out, args.jobs, then)
    chosen = {m: chosen[m] for m in grids}

    log("[4/5] rxf-report: tables and figures")
    from rxf_repro import report

    found = records.read_records([os.path.join(out, "runs")])
    setting = {m: selection.setting_key(report_setting(found, m).hparams) for m in [*methods, *versus]}
    kept = [r for r in found if r.method == catalog.PRETRAINED or selection.setting_key(r.hparams) == setting[r.method]]
    # rxf-report averages probes over seeds, never over settings: it reads the chosen settings' folders (not claim 5's)
    roots = sorted(
        {os.path.join(out, *os.path.relpath(r.path, out).split(os.sep)[:5]) for r in kept if r.method not in versus}
    )
    argv = [*roots, "--out", os.path.join(out, "report"), "--no-paper", "--figure1-task", task]
    run_tool("rxf-report", report.main, argv)

    log("[5/5] the claims")
    numbers = collect(kept, preset, [*methods, *versus])
    table, verdicts = claim_tables(numbers, preset, methods, baselines)
    if versus:
        noise_table, verdicts["versus_r3f"] = versus_r3f_table(numbers, task, versus)
        table += "\n\n" + noise_table
    sentences = verdict_sentences(verdicts, numbers, preset, methods)
    runs_ = [(m, s) for m in methods for s in numbers[m]["best_update"]]
    early = [(m, s) for m, s in runs_ if numbers[m]["best_update"][s] < (numbers[m]["max_update"][s] or 0)]
    converged = [(m, s) for m, s in runs_ if numbers[m]["stopped_improving"][s]]
    pretrained = numbers[catalog.PRETRAINED]["probes"]
    informative = [t for t in preset["probe_tasks"] if pretrained[t] and values(pretrained[t])[0] - baselines[t] >= 5]
    settings = "; ".join(
        f"{NAME[m]} {c['key'].split('.')[-1]} = {c['value']} of {c['scores']}" for m, c in chosen.items()
    )
    figures = sorted(name for name in os.listdir(os.path.join(out, "report")) if name.endswith(".png"))
    elapsed = time.time() - started
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
            f"Settings chosen on dev (seed {selection_seed}): {settings or 'none'}.",
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
            f"Total time: {elapsed:.0f} s. Figures: {', '.join(f'report/{name}' for name in figures)}.",
        ]
    )
    outputs.write_file_atomically(os.path.join(out, "summary.md"), text + "\n")
    summary = {
        "preset": args.preset,
        "encoder": {"package": preset["encoder"], "model": "all-MiniLM-L6-v2", "import_max_abs_diff": parity},
        "finetune_task": task,
        "probe_tasks": preset["probe_tasks"],
        "sizes": preset["sizes"],
        "seeds": seeds,
        "majority_baselines": baselines,
        "selection": {m: {"seed": selection_seed, **c} for m, c in chosen.items()},
        "methods": {
            m: {
                k: {t: values(v) for t, v in by.items()} if k == "probes" else values(by)
                for k, by in numbers[m].items()
            }
            for m in [*methods, *versus, catalog.PRETRAINED]
        },
        "best_before_last_update": {"runs": len(early), "of": len(runs_)},
        "stopped_improving": {"runs": len(converged), "of": len(runs_)},
        "verdicts": verdicts,
        "verdict_sentences": sentences,
        "seconds": elapsed,
    }
    outputs.write_file_atomically(os.path.join(out, "summary.json"), json.dumps(summary, indent=2))
    return text


if __name__ == "__main__":
    sys.exit(main())
