"""Cost per update of standard fine-tuning, R3F, R4F, fast R3F, SMART (S=1, 2, with and without its proximal term)
and fairseq's examples/rxf R3F, side by side (the paper's Table 1, measured).

Each method runs in its own process (so memory high-water marks do not mix) through fairseq's own
``Trainer.train_step``, as ``fairseq-train`` does (``--fp16`` included), on a synthetic batch of
``--batch`` sentences of ``--seq-len`` tokens for a RoBERTa of the given size. Reported per method: the
median seconds per update over the timed steps (after ``--warmup`` untimed ones), forward and backward
passes per update (counted by hooks), and peak memory: ``torch.cuda.max_memory_allocated`` on CUDA, on
CPU how much the training steps raise the process's peak resident memory above what building the model
and trainer took (the libraries' few hundred MB would otherwise swamp the differences).

    python benchmarks/cost.py                      # 4-layer 256-d RoBERTa, batch 16 x 122, CPU
    python benchmarks/cost.py --device cuda --fp16 --layers 12 --dim 768 --heads 12 --ffn 3072 --seq-len 256
"""

import argparse
import json
import os
import resource
import shutil
import statistics
import subprocess
import sys
import tempfile
import time
from typing import Dict, List

METHODS = {
    # name: (task, criterion flags)
    "standard": ("sentence_prediction", ["--criterion", "sentence_prediction"]),
    "r3f": ("sentence_prediction", ["--criterion", "sentence_prediction_r3f"]),
    "r4f": ("sentence_prediction_r4f", ["--criterion", "sentence_prediction_r3f"]),
    "fast_r3f": ("sentence_prediction", ["--criterion", "sentence_prediction_r3f", "--fast-r3f"]),
    # R3F's two passes as one forward of the batch concatenated with itself (--r3f-one-forward)
    "r3f_one_forward": ("sentence_prediction", ["--criterion", "sentence_prediction_r3f", "--r3f-one-forward"]),
    # SMART as published (ascent projected onto the eps-ball + the proximal term against its momentum teacher),
    # with S = 1 or 2 ascent steps, and without the proximal term (--smart-mu 0: the ascent alone)
    "smart_s1": ("sentence_prediction", ["--criterion", "sentence_prediction_smart", "--smart-steps", "1"]),
    "smart_s2": ("sentence_prediction", ["--criterion", "sentence_prediction_smart", "--smart-steps", "2"]),
    "smart_s1_mu0": (
        "sentence_prediction",
        ["--criterion", "sentence_prediction_smart", "--smart-steps", "1", "--smart-mu", "0"],
    ),
    "smart_s2_mu0": (
        "sentence_prediction",
        ["--criterion", "sentence_prediction_smart", "--smart-steps", "2", "--smart-mu", "0"],
    ),
    "reference_r3f": ("sentence_prediction", ["--criterion", "sentence_prediction"]),  # criterion swapped below
}
PAPER_TABLE_1 = {
    "standard": "1/1",
    "r3f": "2/1",
    "r4f": "2/1",
    "fast_r3f": "2/1",
    "r3f_one_forward": "2/1",
    "smart_s1": "2/2",
    "smart_s2": "3/3",
    "smart_s1_mu0": "2/2",
    "smart_s2_mu0": "3/3",
    "reference_r3f": "2/1",
}
VOCAB = 1000


def write_dictionaries(root: str, restore: str = None) -> None:
    """input0 and label dictionaries; with ``--restore``, input0's is the imported checkpoint's ``dict.txt``."""
    for sub, symbols in (("input0", [f"w{i}" for i in range(VOCAB)]), ("label", ["0", "1"])):
        os.makedirs(os.path.join(root, sub), exist_ok=True)
        with open(os.path.join(root, sub, "dict.txt"), "w") as f:
            f.writelines(f"{s} 1\n" for s in symbols)
    if restore:
        shutil.copy(
            os.path.join(os.path.dirname(os.path.abspath(restore)), "dict.txt"),
            os.path.join(root, "input0", "dict.txt"),
        )


def fairseq_argv(args, data: str, method: str) -> List[str]:
    task, criterion = METHODS[method]
    if args.restore:  # the checkpoint's own sizes (rxf_roberta reads them from --restore-file)
        model = ["--arch", "rxf_roberta", "--restore-file", os.path.abspath(args.restore)]
    else:
        model = [
            "--arch",
            "roberta_base",
            "--encoder-layers",
            str(args.layers),
            "--encoder-embed-dim",
            str(args.dim),
            "--encoder-ffn-embed-dim",
            str(args.ffn),
            "--encoder-attention-heads",
            str(args.heads),
            "--max-positions",
            str(max(args.seq_len, 8)),
        ]
    argv = [
        data,
        "--user-dir",
        os.path.join(os.path.dirname(os.path.dirname(os.path.abspath(__file__))), "rxf_fairseq"),
        "--task",
        task,
        *criterion,
        "--num-classes",
        "2",
        *model,
        "--optimizer",
        "adam",
        "--lr",
        "1e-5",
        "--dropout",
        "0.1",
        "--batch-size",
        str(args.batch),
        "--seed",
        "1",
    ]
    if args.device == "cpu":
        argv.append("--cpu")
    if args.fp16:
        argv.append("--fp16")
    return argv


def measure(args, method: str) -> Dict:
    """Runs in the child process: build, warm up, time, count."""
    import torch
    from fairseq import options, tasks
    from fairseq.dataclass.utils import convert_namespace_to_omegaconf
    from fairseq.trainer import Trainer

    import rxf_fairseq  # noqa: F401

    torch.set_num_threads(args.threads)
    data = tempfile.mkdtemp(prefix="rxf-bench-")
    write_dictionaries(data, args.restore)
    cfg = convert_namespace_to_omegaconf(
        options.parse_args_and_arch(options.get_training_parser(), fairseq_argv(args, data, method))
    )
    task = tasks.setup_task(cfg.task)
    model = task.build_model(cfg.model)
    if args.restore:  # the imported weights; the classification head is new, as in fine-tuning
        from fairseq import checkpoint_utils

        state = checkpoint_utils.load_checkpoint_to_cpu(args.restore)["model"]
        missing, unexpected = model.load_state_dict(state, strict=False)
        assert not unexpected and all(k.startswith("classification_heads.") for k in missing), (missing, unexpected)
    criterion = task.build_criterion(cfg.criterion)
    if method == "reference_r3f":
        sys.path.insert(0, os.path.dirname(os.path.abspath(__file__)))  # benchmarks/, when imported by a test
        from reference import load_reference_criterion

        reference = load_reference_criterion("sentence_prediction_r3f").SentencePredictionR3F
        criterion = reference(task, 1e-5, 1.0, "uniform", "sentence_classification_head", False)
    trainer = Trainer(cfg, task, model, criterion)

    counts = {"forward": 0, "backward": 0}
    model.register_forward_hook(lambda *_: counts.__setitem__("forward", counts["forward"] + 1))
    for name in ("backward", "grad"):
        original = getattr(torch.autograd, name)

        def counted(*a, _original=original, **k):
            counts["backward"] += 1
            return _original(*a, **k)

        setattr(torch.autograd, name, counted)

    generator = torch.Generator().manual_seed(0)
    tokens = torch.randint(4, len(task.source_dictionary) - 1, (args.batch, args.seq_len), generator=generator)
    tokens[:, 0] = 0  # <s>
    tokens[:, -1] = 2  # </s>
    sample = {
        "id": torch.arange(args.batch),
        "nsentences": args.batch,
        "ntokens": tokens.numel(),
        "net_input": {"src_tokens": tokens, "src_lengths": torch.full((args.batch,), args.seq_len)},
        "target": torch.randint(0, 2, (args.batch,), generator=generator),
    }
    cuda = args.device == "cuda"

    def step():
        trainer.train_step([sample])
        if cuda:
            torch.cuda.synchronize()

    rss_before = resource.getrusage(resource.RUSAGE_SELF).ru_maxrss  # KiB on Linux: model and trainer built
    for _ in range(args.warmup):
        step()
    if cuda:
        torch.cuda.reset_peak_memory_stats()
    counts.update(forward=0, backward=0)
    times, cpu_times = [], []
    for _ in range(args.steps):
        started, cpu_started = time.perf_counter(), time.process_time()
        step()
        times.append(time.perf_counter() - started)
        cpu_times.append(time.process_time() - cpu_started)
    if cuda:
        peak_mb = torch.cuda.max_memory_allocated() / 2**20
    else:  # what training adds to the high-water mark: activations, gradients, optimizer state
        peak_mb = (resource.getrusage(resource.RUSAGE_SELF).ru_maxrss - rss_before) / 1024
    return {
        "method": method,
        "seconds": times,
        "cpu_seconds": cpu_times,  # CPU time of all threads: unaffected by other tenants of a shared machine
        "forwards_per_update": counts["forward"] / args.steps,
        "backwards_per_update": counts["backward"] / args.steps,
        "peak_memory_mb": peak_mb,
        "rss_before_training_mb": rss_before / 1024,
    }


def pool(runs: List[Dict]) -> Dict:
    """One method's runs (rounds) combined: median over all their timed updates, the largest peak."""
    times = [t for run in runs for t in run["seconds"]]
    cpu_times = [t for run in runs for t in run["cpu_seconds"]]
    counts = {(run["forwards_per_update"], run["backwards_per_update"]) for run in runs}
    assert len(counts) == 1, f"pass counts differ between rounds: {counts}"
    return {
        **runs[0],
        "seconds": times,
        "cpu_seconds": cpu_times,  # CPU time of all threads: unaffected by other tenants of a shared machine
        "seconds_per_update": statistics.median(times),
        "cpu_seconds_per_update": statistics.median(cpu_times),
        "seconds_min": min(times),
        "seconds_max": max(times),
        "peak_memory_mb": max(run["peak_memory_mb"] for run in runs),
    }


def run_in_rounds(script: str, argv: List[str], methods: List[str], rounds: int) -> List[Dict]:
    """Each method measured by ``script --child METHOD`` in its own process (its last line ``RESULT {json}``),
    ``rounds`` times in rotating order, and pooled per method."""
    runs: Dict[str, List[Dict]] = {m: [] for m in methods}
    for round_ in range(rounds):
        order = methods[round_ % len(methods) :] + methods[: round_ % len(methods)]
        for i, method in enumerate(order, 1):
            print(f"[round {round_ + 1}/{rounds}, {i}/{len(order)}] {method} ...", file=sys.stderr, flush=True)
            proc = subprocess.run(
                [sys.executable, os.path.abspath(script), *argv, "--child", method],
                stdout=subprocess.PIPE,
                stderr=subprocess.STDOUT,
                text=True,
            )
            lines = [line for line in proc.stdout.splitlines() if line.startswith("RESULT ")]
            if proc.returncode != 0 or not lines:
                raise SystemExit(f"benchmark of {method} failed (exit {proc.returncode}):\n{proc.stdout[-4000:]}")
            runs[method].append(json.loads(lines[-1][len("RESULT ") :]))
    return [pool(runs[m]) for m in methods]


def table(results: List[Dict], args) -> str:
    base = next(r for r in results if r["method"] == "standard")
    memory = "peak GPU memory (MB)" if args.device == "cuda" else "peak RSS growth in training (MB)"
    cpu = args.device == "cpu"  # on CUDA the host's CPU time says nothing about the GPU's work
    lines = [
        "| method | s/update (median) | vs standard |"
        + (" CPU s/update (median) | vs standard |" if cpu else "")
        + f" forwards/backwards per update | paper's Table 1 | {memory} | vs standard |",
        "|---|---|---|" + ("---|---|" if cpu else "") + "---|---|---|---|",
    ]
    for r in results:
        cpu_cells = (
            (
                f" {r['cpu_seconds_per_update']:.4f} | "
                f"{r['cpu_seconds_per_update'] / base['cpu_seconds_per_update']:.2f}x |"
            )
            if cpu
            else ""
        )
        lines.append(
            f"| {r['method']} | {r['seconds_per_update']:.4f} | {r['seconds_per_update'] / base['seconds_per_update']:.2f}x |"
            f"{cpu_cells} {r['forwards_per_update']:g}/{r['backwards_per_update']:g} | {PAPER_TABLE_1[r['method']]} | "
            f"{r['peak_memory_mb']:.0f} | {r['peak_memory_mb'] / base['peak_memory_mb']:.2f}x |"
        )
    return "\n".join(lines)


def add_timing_arguments(parser: argparse.ArgumentParser, methods: List[str]) -> None:
    """The options every cost benchmark shares (this one and benchmarks/cost_hf.py)."""
    parser.add_argument("--seq-len", type=int, default=122, help="tokens per sentence (default 122)")
    parser.add_argument("--batch", type=int, default=16, help="sentences per batch (default 16)")
    parser.add_argument("--warmup", type=int, default=3, help="untimed updates before the timed ones (default 3)")
    parser.add_argument("--steps", type=int, default=10, help="timed updates per method and round (default 10)")
    parser.add_argument(
        "--rounds",
        type=int,
        default=2,
        help="run every method this many times, in rotating order, and pool the timed updates "
        "(cancels slow drift in machine load between methods)",
    )
    parser.add_argument("--device", choices=["cpu", "cuda"], default="cpu", help="where to train (default cpu)")
    parser.add_argument("--threads", type=int, default=os.cpu_count(), help="torch CPU threads")
    parser.add_argument("--methods", default=",".join(methods), help="comma-separated subset of " + ",".join(methods))
    parser.add_argument("--child", help=argparse.SUPPRESS)


def chosen_methods(parser: argparse.ArgumentParser, args, known) -> List[str]:
    """``--methods`` checked (known, standard among them) and the shared numeric options checked."""
    methods = [m.strip() for m in args.methods.split(",") if m.strip()]
    unknown = [m for m in methods if m not in known]
    if unknown or "standard" not in methods:
        parser.error(f"--methods: unknown {unknown}" if unknown else "--methods must include standard (the baseline)")
    if args.steps < 1 or args.warmup < 1 or args.rounds < 1:
        parser.error("--steps, --warmup and --rounds must be >= 1")
    return methods


def write_results(path: str, script: str, argv: List[str], header: str, config: Dict, machine: str, results) -> None:
    """The results file: provenance (date, commit, machine), the command, the set-up and every measurement."""
    from rxf_repro.outputs import write_file_atomically
    from rxf_repro.provenance import provenance

    record = {
        **provenance(),
        "command": ["python", script, *argv],
        "setup": header,
        "config": config,
        "device": machine,
        "results": results,
    }
    write_file_atomically(path, json.dumps(record, indent=2) + "\n")
    print(f"\nwritten: {path}", file=sys.stderr)


def main(argv=None) -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--layers", type=int, default=4, help="encoder layers of the RoBERTa timed (default 4)")
    parser.add_argument("--dim", type=int, default=256, help="embedding dimension (default 256)")
    parser.add_argument("--heads", type=int, default=4, help="attention heads (default 4)")
    parser.add_argument("--ffn", type=int, default=1024, help="feed-forward dimension (default 1024)")
    add_timing_arguments(parser, list(METHODS))
    parser.add_argument("--fp16", action="store_true", help="fairseq's --fp16 (CUDA only)")
    parser.add_argument(
        "--restore",
        metavar="MODEL_PT",
        help="time this checkpoint (e.g. rxf-import-hf's DEST/model.pt, its dict.txt beside it) instead "
        "of a random RoBERTa of --layers/--dim/--heads/--ffn",
    )
    parser.add_argument(
        "--json",
        help="also write the results (with date, commit and machine) to this file; default: "
        "none written, the table is printed (the committed results are benchmarks/results/cost_cpu.json)",
    )
    args = parser.parse_args(argv)
    methods = chosen_methods(parser, args, METHODS)
    if args.fp16 and args.device != "cuda":
        parser.error("--fp16 needs --device cuda (fairseq's fp16 does not run on CPU)")

    if args.child:
        print("RESULT " + json.dumps(measure(args, args.child)), flush=True)
        return

    own = list(argv if argv is not None else sys.argv[1:])
    results = run_in_rounds(__file__, own, methods, args.rounds)
    report = table(results, args)
    import torch

    machine = (
        torch.cuda.get_device_name() if args.device == "cuda" else f"CPU, {args.threads} threads"
    ) + f", torch {torch.__version__}"
    model = (
        f"the checkpoint {args.restore}"
        if args.restore
        else f"RoBERTa {args.layers} layers x {args.dim} dims ({args.heads} heads, ffn {args.ffn})"
    )
    header = (
        f"{model}, batch "
        f"{args.batch} x {args.seq_len} tokens, {'fp16' if args.fp16 else 'fp32'}, {machine}; "
        f"median of {args.rounds} x {args.steps} updates, each run after {args.warmup} warm-up"
    )
    print(header + "\n\n" + report)
    if args.json:
        config = {k: v for k, v in vars(args).items() if k != "child"}
        write_results(args.json, "benchmarks/cost.py", own, header, config, machine, results)


if __name__ == "__main__":
    main()
