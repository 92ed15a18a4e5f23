"""``make demo``: the paper in miniature on a laptop CPU.

1. A synthetic multi-task benchmark (``rxf_repro/minilang.py``: SST-2-, RTE-, MRPC- and CoLA-like
   tasks on one artificial language), generated from a seed, binarized as ``preprocess/glue.sh`` lays
   GLUE out (``TASK-bin/input0 input1 label``).
2. A tiny RoBERTa pretrained with fairseq's ``masked_lm``; its checkpoint is an ordinary fairseq
   checkpoint and goes through ``--restore-file`` as roberta.large's would.
3. For each method and seed, the paper's generalisation protocol (Figure 3) with the project's own code
   path: ``rxf-run probe generalisation`` (``run_scripts/probe.sh``) with ``configs/glue`` and the preset
   ``configs/demo.yaml``: fine-tune on SST-2, then linear probes of the frozen encoder on RTE, MRPC, CoLA.
4. ``rxf-report`` on the records (tables, Figures 1-3), and a Markdown summary with task accuracy, probe
   accuracy, wall time (mean ± std over seeds) and the baselines, printed and written to the output folder.
"""

import argparse
import json
import os
import statistics
import sys
import time
from typing import Dict, List, Sequence, Tuple

import yaml

from rxf_repro import catalog, configs, execution, minilang, outputs, process, records
from rxf_repro.cli import positive_int
from rxf_repro.data.common import fairseq_preprocess

PRESET = os.path.join(configs.config_root(), "demo.yaml")
UNINFORMATIVE = 2.0  # points: a probe task whose pretrained probe is no further above its majority baseline


def log(message: str) -> None:
    print(message, file=sys.stderr, flush=True)


def load_preset(quick: bool) -> Dict:
    with open(PRESET) as f:
        preset = yaml.safe_load(f)
    quick_preset = preset.pop("quick")
    return dict(preset, **quick_preset) if quick else preset


# ---------------------------------------------------------------------------------------- data


def _write(path: str, lines: Sequence[str]) -> None:
    with open(path, "w", encoding="utf-8") as f:
        f.write("\n".join(lines) + "\n")


def write_benchmark(out: str, sizes: Dict[str, int], seed: int) -> Tuple[str, str, Dict[str, float]]:
    """(glue_bin, lm_bin, majority baseline per task on valid), written below ``out`` (the demo's own folder,
    which replaces the destination only once everything is done)."""
    raw = os.path.join(out, "raw")
    os.makedirs(raw, exist_ok=True)
    lm_bin, glue_bin = os.path.join(out, "data", "lm"), os.path.join(out, "data", "glue-bin")
    _write(os.path.join(raw, "corpus.train"), minilang.corpus(sizes["corpus"], seed))
    _write(os.path.join(raw, "corpus.valid"), minilang.corpus(max(200, sizes["corpus"] // 20), seed + 1000))
    fairseq_preprocess(
        [
            "--only-source",
            "--trainpref",
            os.path.join(raw, "corpus.train"),
            "--validpref",
            os.path.join(raw, "corpus.valid"),
            "--destdir",
            lm_bin,
        ]
    )
    dictionary = os.path.join(lm_bin, "dict.txt")
    baselines = {}
    for task in minilang.TASKS:
        splits = {
            "train": minilang.generate(task, sizes["train"], seed),
            "valid": minilang.generate(task, sizes["valid"], seed + 1000),
        }
        baselines[task] = minilang.majority_baseline([label for _, label in splits["valid"]])
        n_inputs = len(splits["train"][0][0])
        for split, examples in splits.items():
            for k in range(n_inputs):
                _write(os.path.join(raw, f"{task}.{split}.input{k}"), [inputs[k] for inputs, _ in examples])
            _write(os.path.join(raw, f"{task}.{split}.label"), [label for _, label in examples])
        task_bin = os.path.join(glue_bin, f"{task}-bin")
        for k in range(n_inputs):
            fairseq_preprocess(
                [
                    "--only-source",
                    "--srcdict",
                    dictionary,
                    "--destdir",
                    os.path.join(task_bin, f"input{k}"),
                    "--trainpref",
                    os.path.join(raw, f"{task}.train.input{k}"),
                    "--validpref",
                    os.path.join(raw, f"{task}.valid.input{k}"),
                ]
            )
        fairseq_preprocess(
            [
                "--only-source",
                "--destdir",
                os.path.join(task_bin, "label"),
                "--trainpref",
                os.path.join(raw, f"{task}.train.label"),
                "--validpref",
                os.path.join(raw, f"{task}.valid.label"),
            ]
        )
    return glue_bin, lm_bin, baselines


# ----------------------------------------------------------------------------------- pretraining


def pretrain(out: str, lm_bin: str, preset: Dict, seed: int) -> Tuple[str, float]:
    p = preset["pretrain"]
    save_dir = os.path.join(out, "pretrained")
    command = [
        lm_bin,
        "--task",
        "masked_lm",
        "--criterion",
        "masked_lm",
        *preset["arch"],
        "--tokens-per-sample",
        str(p["tokens_per_sample"]),
        "--sample-break-mode",
        "complete",
        "--optimizer",
        "adam",
        "--adam-betas",
        "(0.9,0.98)",
        "--adam-eps",
        "1e-6",
        "--lr",
        str(p["lr"]),
        "--lr-scheduler",
        "polynomial_decay",
        "--warmup-updates",
        str(max(1, p["updates"] // 10)),
        "--total-num-update",
        str(p["updates"]),
        "--max-update",
        str(p["updates"]),
        "--batch-size",
        str(p["batch_size"]),
        "--save-dir",
        save_dir,
        "--no-epoch-checkpoints",
        "--cpu",
        "--seed",
        str(seed),
        "--log-format",
        "json",
        "--log-interval",
        "100",
    ]
    started = time.time()
    execution.preload("fairseq_cli.train")
    with open(os.path.join(out, "pretrain.log"), "w") as f, process.children() as running:
        child = process.ForkedChild(execution.fairseq_main, ("fairseq_cli.train", command), f.fileno(), cwd=out)
        running.append(child)
        code = child.wait()
    if code != 0:
        raise SystemExit(f"rxf-demo: pretraining failed (exit {code}); log: {out}/pretrain.log")
    return os.path.join(save_dir, "checkpoint_last.pt"), time.time() - started


def masked_lm_accuracy(checkpoint: str, lm_bin: str) -> Tuple[float, float]:
    """(accuracy of the pretrained model on the masked tokens of the held-out corpus, accuracy of always
    predicting the corpus's most frequent word), in percent."""
    import torch
    from fairseq import checkpoint_utils

    import rxf_fairseq.checkpoint_compat as compat

    compat.install()  # torch >= 2.6 loads with weights_only: allow what fairseq's checkpoints hold
    models, _, task = checkpoint_utils.load_model_ensemble_and_task([checkpoint], arg_overrides={"data": lm_bin})
    model = models[0].eval()
    dictionary = task.source_dictionary
    counts = dictionary.count[dictionary.nspecial :]
    most_frequent = dictionary.nspecial + max(range(len(counts)), key=counts.__getitem__)
    task.load_dataset("valid")
    itr = task.get_batch_iterator(task.dataset("valid"), max_sentences=64, seed=1).next_epoch_itr(shuffle=False)
    correct = frequent = total = 0
    with torch.no_grad():
        for sample in itr:
            masked = sample["target"].ne(dictionary.pad())
            logits = model(**sample["net_input"], masked_tokens=masked)[0]
            targets = sample["target"][masked]
            correct += int((logits.argmax(-1) == targets).sum())
            frequent += int((targets == most_frequent).sum())
            total += int(targets.numel())
    return 100.0 * correct / total, 100.0 * frequent / total


# ------------------------------------------------------------------------ fine-tuning and probing


def protocol_command(method: str, seed: int, glue_bin: str, checkpoint: str, runs_dir: str, preset: Dict) -> List[str]:
    """rxf-run's arguments for ``run_scripts/probe.sh generalisation METHOD SEED`` with the demo preset, on the
    CPU; method ``none``
    probes the pretrained encoder itself (SST-2 included). Paths relative to the demo folder, where it runs, so
    the records stay true when the finished folder is renamed into place."""
    probes = [t for t in minilang.TASKS if t != "SST-2" or method == catalog.PRETRAINED]
    command = [
        "probe",
        "generalisation",
        method,
        "--data",
        glue_bin,
        "--checkpoint",
        checkpoint,
        "--seeds",
        str(seed),
        "--save-root",
        runs_dir,
        "--cpu",
        "--tiny",
        "--probe-tasks",
        *probes,
    ]
    for override in preset["overrides"]:
        command += ["--set", override]
    for override in preset.get("probe_overrides", []):
        command += ["--probe-set", override]
    return command + ["--", *preset["arch"]]


def run_protocols(
    jobs: List[Tuple[str, int]], glue_bin: str, checkpoint: str, out: str, preset: Dict, parallel: int
) -> None:
    """Every (method, seed) as its own rxf-run (``rxf_repro.runs.main`` in a fork of this process, which has
    fairseq imported already), ``parallel`` at a time (one CPU thread each)."""
    from rxf_repro import runs

    logs = os.path.join(out, "logs")
    os.makedirs(logs, exist_ok=True)
    glue_bin, checkpoint = os.path.relpath(glue_bin, out), os.path.relpath(checkpoint, out)
    env = dict(os.environ, OMP_NUM_THREADS="1", MKL_NUM_THREADS="1") if parallel > 1 else dict(os.environ)
    for module in ("fairseq_cli.train", "rxf_fairseq"):
        execution.preload(module)
    pending, running, done = list(jobs), [], 0
    with process.children() as started_children:  # an error, Ctrl-C or SIGTERM stops every run still going
        while pending or running:
            while pending and len(running) < parallel:
                method, seed = pending.pop(0)
                path = os.path.join(logs, f"{method}-seed{seed}.log")
                argv = protocol_command(method, seed, glue_bin, checkpoint, "runs", preset)
                with open(path, "w") as log_file:
                    proc = process.ForkedChild(runs.main, (argv,), output_fd=log_file.fileno(), cwd=out, env=env)
                started_children.append(proc)
                running.append((method, seed, path, proc, time.time()))
            time.sleep(0.5)
            for item in list(running):
                method, seed, path, proc, started = item
                if proc.poll() is None:
                    continue
                running.remove(item)
                done += 1
                if proc.returncode != 0:
                    tail = open(path).read()[-3000:]
                    raise SystemExit(
                        f"rxf-demo: {method} seed {seed} failed (exit {proc.returncode}); log: "
                        f"{os.path.relpath(path, out)} in the unfinished demo folder {out}, removed on "
                        f"exit:\n{tail}"
                    )
                what = (
                    "pretrained encoder probed"
                    if method == catalog.PRETRAINED
                    else f"{catalog.METHOD_NAMES[method]}: fine-tuned and probed"
                )
                log(f"    {done}/{len(jobs)} {what} (seed {seed}) in {time.time() - started:.0f} s")


# -------------------------------------------------------------------------------------- report


def _mean_std(values: Sequence[float]) -> str:
    if not values:
        return "-"
    if len(values) == 1:
        return f"{values[0]:.1f}"
    return f"{statistics.mean(values):.1f} ± {statistics.stdev(values):.1f}"


def probe_values(found: List[Dict], method: str, task: str) -> List[float]:
    return [
        r["metrics"]["accuracy"]
        for r in sorted(found, key=lambda r: r["seed"])
        if r["kind"] == "probe" and r["method"] == method and r["task"] == task
    ]


def summary_table(found: List[Dict], methods: Sequence[str], baselines: Dict[str, float]) -> Tuple[str, Dict]:
    probes = [t for t in minilang.TASKS if t != "SST-2"]
    numbers: Dict[str, Dict] = {}
    for method in methods:
        tuned = [r for r in found if r["kind"] == "glue" and r["method"] == method]
        probed = {t: probe_values(found, method, t) for t in probes}
        numbers[method] = {
            "SST-2": [r["metrics"]["accuracy"] for r in tuned],
            "probes": probed,
            "probe_mean": [statistics.mean(v) for v in zip(*probed.values())] if all(probed.values()) else [],
            # fairseq's "done training in X seconds": updates, validations and saves, without start-up
            "train_wall_s": [r["train_wall_s"] for r in tuned if r.get("train_wall_s") is not None],
        }
    pretrained = {t: probe_values(found, catalog.PRETRAINED, t) for t in minilang.TASKS}
    numbers[catalog.PRETRAINED] = {
        "probes": pretrained,
        "probe_mean": [statistics.mean(v) for v in zip(*(pretrained[t] for t in probes))]
        if all(pretrained[t] for t in probes)
        else [],
    }
    base_time = statistics.mean(numbers[methods[0]]["train_wall_s"]) if numbers[methods[0]]["train_wall_s"] else None
    header = (
        ["method", "SST-2 accuracy"]
        + [f"{t} probe" for t in probes]
        + ["probe mean", "fine-tuning time (s)", f"vs {catalog.METHOD_NAMES[methods[0]]}"]
    )
    lines = ["| " + " | ".join(header) + " |", "|" + "---|" * len(header)]
    lines.append(
        "| "
        + " | ".join(
            ["pretrained, not fine-tuned", f"{_mean_std(pretrained['SST-2'])} (linear probe)"]
            + [_mean_std(pretrained[t]) for t in probes]
            + [_mean_std(numbers[catalog.PRETRAINED]["probe_mean"]), "", ""]
        )
        + " |"
    )
    for method in methods:
        n = numbers[method]
        ratio = f"{statistics.mean(n['train_wall_s']) / base_time:.2f}x" if base_time and n["train_wall_s"] else "-"
        lines.append(
            "| "
            + " | ".join(
                [catalog.METHOD_NAMES[method], _mean_std(n["SST-2"]) + " (fine-tuned)"]
                + [_mean_std(n["probes"][t]) for t in probes]
                + [_mean_std(n["probe_mean"]), _mean_std(n["train_wall_s"]), ratio]
            )
            + " |"
        )
    lines.append(
        "| majority baseline | "
        + " | ".join(
            [f"{baselines['SST-2']:.1f}"]
            + [f"{baselines[t]:.1f}" for t in probes]
            + [f"{statistics.mean(baselines[t] for t in probes):.1f}", "", ""]
        )
        + " |"
    )
    return "\n".join(lines), numbers


def informative_probes(numbers: Dict, baselines: Dict[str, float]) -> List[str]:
    """Probe tasks on which the pretrained encoder's probe beats the majority baseline by more than
    ``UNINFORMATIVE`` points: only there can fine-tuning lose something measurable."""
    pretrained = numbers[catalog.PRETRAINED]["probes"]
    return [
        t
        for t in minilang.TASKS
        if t != "SST-2" and pretrained[t] and statistics.mean(pretrained[t]) > baselines[t] + UNINFORMATIVE
    ]


def plain_summary(numbers: Dict, methods: Sequence[str], baselines: Dict[str, float], mlm: Tuple[float, float]) -> str:
    """What was measured, in words, whatever it shows."""
    out = [
        f"Pretraining: masked-LM accuracy {mlm[0]:.1f}% on held-out sentences; always guessing the most "
        f"frequent word gives {mlm[1]:.1f}%."
    ]
    beat = [m for m in methods if numbers[m]["SST-2"] and min(numbers[m]["SST-2"]) > baselines["SST-2"]]
    out.append(
        f"Fine-tuning on the SST-2-like task: {len(beat)} of {len(methods)} methods beat the majority baseline "
        f"({baselines['SST-2']:.1f}%) with every seed."
    )
    pretrained = numbers[catalog.PRETRAINED]["probes"]
    probes = [t for t in minilang.TASKS if t != "SST-2"]
    if all(pretrained[t] for t in probes):
        useful = informative_probes(numbers, baselines)
        out.append(
            "Linear probes of the pretrained encoder, before any fine-tuning: "
            + ", ".join(f"{t} {statistics.mean(pretrained[t]):.1f}% (majority {baselines[t]:.1f}%)" for t in probes)
            + "."
        )
        useless = [t for t in probes if t not in useful]
        if useless:
            out.append(
                f"{' and '.join(useless)}: the pretrained probe is within {UNINFORMATIVE:g} points of the "
                "majority baseline, so a linear layer on <s> finds no signal there even before fine-tuning; "
                "these columns cannot show collapse at this scale."
            )
        for task in useful:
            before = statistics.mean(pretrained[task])
            changes = ", ".join(
                f"{catalog.METHOD_NAMES[m]} {statistics.mean(numbers[m]['probes'][task]) - before:+.1f}"
                for m in methods
                if numbers[m]["probes"][task]
            )
            out.append(
                f"Representational collapse on {task} (probe accuracy after fine-tuning on SST-2 minus before, "
                f"points): {changes}."
            )
    out.append("With this few seeds, differences smaller than the ± spread are not evidence either way.")
    times = {m: statistics.mean(numbers[m]["train_wall_s"]) for m in methods if numbers[m]["train_wall_s"]}
    if times.get(methods[0]):
        out.append(
            "Cost: fine-tuning time (fairseq's training loop, without start-up) relative to "
            + catalog.METHOD_NAMES[methods[0]]
            + ": "
            + ", ".join(f"{catalog.METHOD_NAMES[m]} {times[m] / times[methods[0]]:.2f}x" for m in methods if m in times)
            + "."
        )
    return "\n".join(out)


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
    parser.add_argument("--seeds", type=positive_int, help="seeds per method (preset: 2; --quick: 1)")
    parser.add_argument(
        "--methods",
        nargs="+",
        choices=sorted(set(catalog.METHOD_NAMES) - {catalog.PRETRAINED}),
        help="fine-tuning methods, the first is the reference (preset: std r3f r4f fast-r3f smart)",
    )
    parser.add_argument("--quick", action="store_true", help="the tests' preset: tiny sizes, a few updates")
    parser.add_argument(
        "--jobs", type=positive_int, default=2, help="runs in parallel, one CPU thread each (default 2)"
    )
    parser.add_argument("--seed", type=int, default=1, help="seed of the benchmark and the pretraining (default 1)")
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
    print(f"Everything (data, checkpoints, logs, records, report/, summary.md) is in {os.path.abspath(args.out)}")
    return 0


def run(args: argparse.Namespace, out: str) -> str:
    """The whole demo, written into ``out`` (a temporary folder that becomes ``--out`` at the end)."""
    import logging
    import warnings

    logging.getLogger().setLevel(logging.WARNING)  # fairseq's INFO lines; each run keeps its full log
    warnings.filterwarnings("ignore", message=".*pin_memory.*")
    preset = load_preset(args.quick)
    methods = args.methods or preset["methods"]
    seeds = args.seeds or preset["seeds"]
    started = time.time()
    log(f"rxf-demo: working in {out} (renamed to {os.path.abspath(args.out)} when done)")

    sizes = preset["sizes"]
    log(
        f"[1/5] synthetic benchmark (seed {args.seed}): SST-2, RTE, MRPC, CoLA-like tasks, {sizes['train']} train / "
        f"{sizes['valid']} valid each; {sizes['corpus']} unlabelled sentences"
    )
    glue_bin, lm_bin, baselines = write_benchmark(out, sizes, args.seed)
    log(f"[2/5] pretraining a tiny RoBERTa with masked_lm ({preset['pretrain']['updates']} updates)")
    checkpoint, seconds = pretrain(out, lm_bin, preset, args.seed)
    mlm = masked_lm_accuracy(checkpoint, lm_bin)
    log(f"    {seconds:.0f} s; masked-LM accuracy {mlm[0]:.1f}% (most-frequent-word baseline {mlm[1]:.1f}%)")
    jobs = [(m, s) for s in range(1, seeds + 1) for m in [catalog.PRETRAINED] + list(methods)]
    log(
        f"[3/5] {len(jobs)} runs of the generalisation protocol (fine-tune SST-2, probe RTE/MRPC/CoLA; and probes of "
        f"the pretrained encoder): {', '.join(catalog.METHOD_NAMES[m] for m in methods)} x {seeds} seed(s), {args.jobs} at a time"
    )
    run_protocols(jobs, glue_bin, checkpoint, out, preset, args.jobs)
    log("[4/5] rxf-report: tables and figures")
    from rxf_repro import report

    if (
        report.main(
            [os.path.join(out, "runs"), "--out", os.path.join(out, "report"), "--figure1-task", "SST-2", "--no-paper"]
        )
        != 0
    ):
        raise SystemExit("rxf-demo: rxf-report failed")
    log("[5/5] summary")
    found = records.load_records([os.path.join(out, "runs")])
    table, numbers = summary_table(found, methods, baselines)
    words = plain_summary(numbers, methods, baselines, mlm)
    elapsed = time.time() - started
    text = (
        f"# rxf-fairseq demo: the paper in miniature (synthetic benchmark, tiny RoBERTa, CPU)\n\n"
        f"Accuracy in % on each task's validation set, mean ± std over {seeds} seed(s); probes: a linear layer "
        f"on the frozen encoder (pretrained, or fine-tuned on SST-2 with the method of the row).\n\n{table}\n\n"
        f"{words}\n\n"
        f"Total time: {elapsed:.0f} s. Figures: report/figure1_walltime.png, report/figure2_seeds.png, "
        f"report/figure3_generalisation.png.\n"
    )
    with open(os.path.join(out, "summary.md"), "w") as f:
        f.write(text)
    with open(os.path.join(out, "summary.json"), "w") as f:
        json.dump(
            {
                "masked_lm_accuracy": mlm[0],
                "most_frequent_word_accuracy": mlm[1],
                "majority_baselines": baselines,
                "methods": numbers,
                "seconds": elapsed,
            },
            f,
            indent=2,
        )
    return text


if __name__ == "__main__":
    sys.exit(main())
