"""The device check: what only a GPU can tell about the plugin, in one command that fits a short loan of one GPU.

    python benchmarks/gpu_check.py --device cuda --out OUT_DIR          # RoBERTa-large / BART-large shapes, ~6 min
    python benchmarks/gpu_check.py --device cpu --tiny --out OUT_DIR    # tiny shapes, a few updates (make test)

``benchmarks/gpu_check.sh`` runs it after installing, offline, what a bare GPU machine lacks. Steps, each recorded:

1. **training**: ``fairseq-train --user-dir rxf_fairseq --fp16`` (not ``--bf16``: fairseq 0.12 runs it as its TPU path) for
   ``sentence_prediction_r3f``, ``sentence_prediction_r4f`` and ``label_smoothed_cross_entropy_r3f`` on data generated
   here (random tokens) with RoBERTa-large / BART-large shapes from random weights: every logged loss finite, the
   gradient-overflow count (a storm is more than 10% of the updates), ``noise_changed_pct`` as logged, and R4F's head
   matrices' spectral norms after training (at most 1 + 1e-3);
2. **cost**: ``benchmarks/cost.py`` at RoBERTa-large size (24 x 1024, batch 8 as Table 5's RTE) for Standard, R3F,
   R4F, fast R3F, R3F in one forward, SMART and fairseq's examples/rxf R3F;
3. **host reads**: per update (forward and backward) of each criterion, the reads of a tensor's value by the host
   (``item``, ``tolist``, ``bool``/``int``/``float`` of a tensor: each a device synchronisation on a GPU), counted with
   a torch function mode, and on CUDA the synchronisations ``torch.cuda.set_sync_debug_mode`` reports: a criterion
   must add none to its stock fairseq criterion's;
4. ``gpu_check.json`` and ``gpu_check.md`` in OUT_DIR. Exit 1 if any check failed (each named in the output).
"""

import argparse
import json
import math
import os
import random
import re
import subprocess
import sys
import time
import warnings
from typing import Dict, List, Sequence, Tuple

HERE = os.path.dirname(os.path.abspath(__file__))
REPO = os.path.dirname(HERE)
sys.path.insert(0, REPO)

# RoBERTa-large / BART-large (fairseq's own architectures) or tiny stand-ins; the data and run lengths of each size
SIZES = {
    "full": {
        "roberta": ["--arch", "roberta_large", "--max-positions", "512"],
        "bart": ["--arch", "bart_large"],
        "cost": ["--layers", "24", "--dim", "1024", "--heads", "16", "--ffn", "4096", "--seq-len", "256"],
        "cost_rounds": ["--batch", "8", "--warmup", "3", "--steps", "8", "--rounds", "2"],
        "cost_methods": "standard,r3f,r4f,fast_r3f,r3f_one_forward,smart_s1,reference_r3f",
        "vocab": 50000,
        "lengths": (32, 256),
        "target_lengths": (16, 64),
        "train": 2048,
        "updates": 150,
        "batch": 8,
        "timeout_s": 420,
        "log_interval": 10,
    },
    "tiny": {
        "roberta": ["--arch", "roberta_base", "--encoder-layers", "1", "--encoder-embed-dim", "16"]
        + ["--encoder-ffn-embed-dim", "32", "--encoder-attention-heads", "2", "--max-positions", "64"],
        "bart": ["--arch", "bart_base", "--encoder-layers", "1", "--decoder-layers", "1"]
        + ["--encoder-embed-dim", "16", "--decoder-embed-dim", "16", "--encoder-ffn-embed-dim", "32"]
        + ["--decoder-ffn-embed-dim", "32", "--encoder-attention-heads", "2", "--decoder-attention-heads", "2"]
        + ["--max-source-positions", "64", "--max-target-positions", "64"],
        "cost": ["--layers", "1", "--dim", "16", "--heads", "2", "--ffn", "32", "--seq-len", "12"],
        "cost_rounds": ["--batch", "4", "--warmup", "1", "--steps", "2", "--rounds", "1"],
        "cost_methods": "standard,r3f,r3f_one_forward",
        "vocab": 200,
        "lengths": (4, 20),
        "target_lengths": (3, 10),
        "train": 64,
        "updates": 4,
        "batch": 4,
        "timeout_s": 240,
        "log_interval": 1,
    },
}
HEAD = "classification_heads.sentence_classification_head."
SPECTRAL_TOLERANCE = 1e-3
OVERFLOW_STORM = 0.10  # more than this share of the updates skipped for overflow


# ------------------------------------------------------------------------------------------------ data


def write_dictionary(path: str, symbols: Sequence[str]) -> None:
    with open(path, "w", encoding="utf-8") as f:
        f.writelines(f"{s} 1\n" for s in symbols)


def write_split(prefix: str, items: List[List[int]], vocab_size: int) -> None:
    import torch
    from fairseq.data import indexed_dataset

    builder = indexed_dataset.make_builder(prefix + ".bin", impl="mmap", vocab_size=vocab_size)
    for item in items:
        builder.add_item(torch.IntTensor(item))
    builder.finalize(prefix + ".idx")


def random_sentence(rng: random.Random, size: dict, lengths: Tuple[int, int]) -> List[int]:
    """Token ids of the dictionary's words (after fairseq's 4 specials), ending in </s> as fairseq-preprocess ends
    every line."""
    return [rng.randrange(4, 4 + size["vocab"]) for _ in range(rng.randint(*lengths))] + [2]


def make_data(root: str, size: dict) -> Dict[str, str]:
    """Binarized data as fairseq-preprocess writes it: a 2-class sentence-prediction folder (input0/, label/) and a
    translation folder (src -> tgt, one joined dictionary), random tokens."""
    rng = random.Random(1)
    words = [f"w{i}" for i in range(size["vocab"])]
    vocab_size = 4 + len(words)
    cls, s2s = os.path.join(root, "cls"), os.path.join(root, "s2s")
    for folder in (os.path.join(cls, "input0"), os.path.join(cls, "label"), s2s):
        os.makedirs(folder, exist_ok=True)
    write_dictionary(os.path.join(cls, "input0", "dict.txt"), words)
    write_dictionary(os.path.join(cls, "label", "dict.txt"), ["0", "1"])
    for lang in ("src", "tgt"):
        write_dictionary(os.path.join(s2s, f"dict.{lang}.txt"), words)
    for split, n in (("train", size["train"]), ("valid", max(8, size["train"] // 16))):
        write_split(
            os.path.join(cls, "input0", split),
            [random_sentence(rng, size, size["lengths"]) for _ in range(n)],
            vocab_size,
        )
        write_split(os.path.join(cls, "label", split), [[4 + rng.randrange(2), 2] for _ in range(n)], 6)
        pairs = [
            (random_sentence(rng, size, size["lengths"]), random_sentence(rng, size, size["target_lengths"]))
            for _ in range(n)
        ]
        for lang, column in (("src", 0), ("tgt", 1)):
            write_split(os.path.join(s2s, f"{split}.src-tgt.{lang}"), [p[column] for p in pairs], vocab_size)
    return {"cls": cls, "s2s": s2s}


# ------------------------------------------------------------------------------------------------ training


def run_argv(name: str, data: Dict[str, str], size: dict, precision: str, device: str, updates: int, save: str):
    """fairseq-train's arguments for one of the three criteria."""
    common = [
        "--user-dir",
        os.path.join(REPO, "rxf_fairseq"),
        "--optimizer",
        "adam",
        "--adam-betas",
        "(0.9, 0.98)",
        "--adam-eps",
        "1e-6",
        "--lr",
        "1e-5",
        "--lr-scheduler",
        "polynomial_decay",
        "--total-num-update",
        str(updates),
        "--warmup-updates",
        str(max(1, round(0.06 * updates))),
        "--max-update",
        str(updates),
        "--batch-size",
        str(size["batch"]),
        "--required-batch-size-multiple",
        "1",
        "--seed",
        "1",
        "--num-workers",
        "0",
        "--distributed-world-size",
        "1",
        "--disable-validation",
        "--save-dir",
        save,
        "--no-epoch-checkpoints",
        "--no-save-optimizer-state",
        "--log-format",
        "json",
        "--log-interval",
        str(size["log_interval"]),
        "--eps",
        "1e-5",
    ]
    common += {"fp16": ["--fp16"], "bf16": ["--bf16"], "fp32": []}[precision]
    if device == "cpu":
        common.append("--cpu")
    if name in ("r3f", "r4f"):
        task = "sentence_prediction" if name == "r3f" else "sentence_prediction_r4f"
        return [data["cls"], "--task", task, *size["roberta"], "--criterion", "sentence_prediction_r3f"] + [
            "--num-classes",
            "2",
            "--init-token",
            "0",
            "--separator-token",
            "2",
            "--r3f-lambda",
            "1.0",
            "--noise-type",
            "uniform",
            *common,
        ]
    return [data["s2s"], "--task", "translation", "--source-lang", "src", "--target-lang", "tgt", *size["bart"]] + [
        "--share-all-embeddings",
        "--criterion",
        "label_smoothed_cross_entropy_r3f",
        "--label-smoothing",
        "0.1",
        "--r3f-lambda",
        "0.01",
        "--noise-type",
        "normal",
        *common,
    ]


def parse_log(text: str) -> Dict:
    """The json log lines of fairseq-train: every train_inner entry, and how many overflows it noted."""
    from rxf_repro.attempts import json_log

    inner = json_log([(None, line) for line in text.splitlines()], "train_inner")
    return {"inner": inner, "overflows": len(re.findall(r"gradient overflow detected|AMP: overflow detected", text))}


def spectral_norms(checkpoint: str) -> Dict[str, float]:
    """sigma_max of each R4F head matrix as the model applies it: W / (u^T W v), from the saved power iteration."""
    import torch

    import rxf_fairseq  # noqa: F401  (the checkpoint allow-list of torch >= 2.6)

    state = torch.load(checkpoint, map_location="cpu")["model"]
    norms = {}
    for layer in ("dense", "out_proj"):
        w = state[HEAD + layer + ".weight"].double()
        u, v = state[HEAD + layer + ".sn_u"].double(), state[HEAD + layer + ".sn_v"].double()
        norms[layer] = torch.linalg.matrix_norm(w / (u @ w @ v), ord=2).item()
    return norms


def start_training(name: str, precision: str, data, size, device: str, updates: int, work: str) -> Dict:
    """fairseq-train of one criterion at one precision, started in the background (the runs check correctness, not
    speed, so they share the device); ``finish_training`` waits for it and checks it."""
    save = os.path.join(work, f"{name}-{precision}")
    argv = run_argv(name, data, size, precision, device, updates, save)
    os.makedirs(save, exist_ok=True)
    log = open(save + ".log", "w", encoding="utf-8")
    proc = subprocess.Popen(
        [sys.executable, "-c", "from fairseq_cli.train import cli_main; cli_main()", *argv],
        stdout=log,
        stderr=subprocess.STDOUT,
        cwd=REPO,
    )
    return {
        "name": name,
        "precision": precision,
        "updates": updates,
        "save": save,
        "proc": proc,
        "log": log,
        "started": time.time(),
        "deadline": time.time() + size["timeout_s"],
    }


def finish_training(run: Dict) -> Dict:
    name, precision, updates, save = run["name"], run["precision"], run["updates"], run["save"]
    try:
        returncode = run["proc"].wait(timeout=max(0.0, run["deadline"] - time.time()))
    except subprocess.TimeoutExpired:
        run["proc"].kill()
        returncode = run["proc"].wait()
        run["timed_out"] = True
    seconds = time.time() - run["started"]
    run["log"].close()
    with open(save + ".log", encoding="utf-8") as f:
        text = f.read()
    proc = subprocess.CompletedProcess(run["proc"].args, returncode, stdout=text)
    log = parse_log(proc.stdout)
    losses = [float(e["loss"]) for e in log["inner"] if "loss" in e]
    result = {
        "check": f"train {name} {precision}",
        "seconds": round(seconds, 1),
        "updates": updates,
        "exit": proc.returncode,
        "losses_logged": len(losses),
        "first_loss": losses[0] if losses else None,
        "last_loss": losses[-1] if losses else None,
        "overflows": log["overflows"],
        "noise_changed_pct": [float(e["noise_changed_pct"]) for e in log["inner"] if "noise_changed_pct" in e],
        "symm_kl": [float(e["symm_kl"]) for e in log["inner"] if "symm_kl" in e],
        "failures": [],
    }
    if run.get("timed_out"):
        result["failures"].append(f"fairseq-train still running after {round(seconds)} s: killed")
        return result
    if proc.returncode != 0:
        result["failures"].append(f"fairseq-train exited {proc.returncode}: {proc.stdout.strip().splitlines()[-1:]}")
        return result
    if not losses or not all(math.isfinite(x) for x in losses):
        result["failures"].append(f"losses not all finite (or none logged): {losses[:5]}")
    if log["overflows"] > OVERFLOW_STORM * updates:
        result["failures"].append(f"overflow storm: {log['overflows']} of {updates} updates skipped")
    if precision in ("fp16", "bf16") and not result["noise_changed_pct"]:
        result["failures"].append(f"noise_changed_pct not logged under --{precision}")
    if not result["symm_kl"]:
        result["failures"].append("symm_kl not logged")
    if name == "r4f":
        result["spectral_norms"] = spectral_norms(os.path.join(save, "checkpoint_last.pt"))
        high = {k: v for k, v in result["spectral_norms"].items() if v > 1 + SPECTRAL_TOLERANCE}
        if high:
            result["failures"].append(f"R4F spectral norms above 1 after training: {high}")
    return result


# ------------------------------------------------------------------------------------------------ host reads

HOST_READS = ("item", "tolist", "__bool__", "__int__", "__float__", "__index__")
# (label, stock baseline label, data, task, criterion flags)
VARIANTS = [
    ("sentence_prediction", None, "cls", "sentence_prediction", ["--criterion", "sentence_prediction"]),
    (
        "sentence_prediction_r3f",
        "sentence_prediction",
        "cls",
        "sentence_prediction",
        ["--criterion", "sentence_prediction_r3f"],
    ),
    (
        "sentence_prediction_r3f --fast-r3f",
        "sentence_prediction",
        "cls",
        "sentence_prediction",
        ["--criterion", "sentence_prediction_r3f", "--fast-r3f"],
    ),
    (
        "sentence_prediction_r3f --r3f-one-forward",
        "sentence_prediction",
        "cls",
        "sentence_prediction",
        ["--criterion", "sentence_prediction_r3f", "--r3f-one-forward"],
    ),
    (
        "sentence_prediction_r4f (task) + r3f",
        "sentence_prediction",
        "cls",
        "sentence_prediction_r4f",
        ["--criterion", "sentence_prediction_r3f"],
    ),
    (
        "sentence_prediction_smart",
        "sentence_prediction",
        "cls",
        "sentence_prediction",
        ["--criterion", "sentence_prediction_smart"],
    ),
    ("label_smoothed_cross_entropy", None, "s2s", "translation", ["--criterion", "label_smoothed_cross_entropy"]),
    (
        "label_smoothed_cross_entropy_r3f",
        "label_smoothed_cross_entropy",
        "s2s",
        "translation",
        ["--criterion", "label_smoothed_cross_entropy_r3f"],
    ),
]


def host_reads(data, size, device: str, precision: str, updates: int = 3) -> List[Dict]:
    """Each criterion's forward and backward, ``updates`` times after one untimed call, counting host reads (and on
    CUDA the synchronisations torch reports), apart: those made inside the model's forward passes (fairseq's
    model code, once per pass) and the criterion's own (everything else), which must not exceed its stock
    criterion's."""
    import torch
    from fairseq import options, tasks, utils
    from fairseq.dataclass.utils import convert_namespace_to_omegaconf
    from torch.overrides import TorchFunctionMode

    where = {"depth": 0}
    counts = {"model": 0, "criterion": 0, "model_syncs": 0, "criterion_syncs": 0}
    kinds: Dict[str, int] = {}

    def place() -> str:
        return "model" if where["depth"] else "criterion"

    class Reads(TorchFunctionMode):
        def __torch_function__(self, func, types, args=(), kwargs=None):
            name = getattr(func, "__name__", "")
            if name in HOST_READS:
                counts[place()] += 1
                kinds[f"{place()}.{name}"] = kinds.get(f"{place()}.{name}", 0) + 1
            return func(*args, **(kwargs or {}))

    def on_warning(message, category, filename, lineno, file=None, line=None):
        if "synchroniz" in str(message):
            counts[place() + "_syncs"] += 1

    results = []
    for label, baseline, kind, task_name, flags in VARIANTS:
        model_flags = size["roberta"] if kind == "cls" else size["bart"] + ["--share-all-embeddings"]
        extra = ["--num-classes", "2"] if kind == "cls" else ["--source-lang", "src", "--target-lang", "tgt"]
        argv = [data[kind], "--user-dir", os.path.join(REPO, "rxf_fairseq"), "--task", task_name, *flags]
        argv += [*model_flags, *extra, "--batch-size", str(size["batch"]), "--seed", "1", "--optimizer", "adam"]
        argv += ["--max-update", "10"] + (["--cpu"] if device == "cpu" else [])
        cfg = convert_namespace_to_omegaconf(options.parse_args_and_arch(options.get_training_parser(), argv))
        task = tasks.setup_task(cfg.task)
        model = task.build_model(cfg.model)
        criterion = task.build_criterion(cfg.criterion)
        task.load_dataset("train")
        sample = next(
            task.get_batch_iterator(task.dataset("train"), max_sentences=size["batch"], seed=1).next_epoch_itr(
                shuffle=False
            )
        )
        if device == "cuda":
            model, criterion = model.cuda(), criterion.cuda()
            sample = utils.move_to_cuda(sample)
            if precision != "fp32":
                model = model.to(torch.float16 if precision == "fp16" else torch.bfloat16)
        model.train()
        model.register_forward_pre_hook(lambda *a: where.__setitem__("depth", where["depth"] + 1))
        model.register_forward_hook(lambda *a: where.__setitem__("depth", where["depth"] - 1))
        forwards = [0]
        model.register_forward_hook(lambda *a: forwards.__setitem__(0, forwards[0] + 1))

        def update():
            criterion.train()  # fairseq's trainer does, once per update (SMART's teacher absorbs then)
            loss, _, _ = criterion(model, sample)
            loss.backward()

        update()  # the first call checks the model and builds SMART's teacher
        counts.update(model=0, criterion=0, model_syncs=0, criterion_syncs=0)
        kinds.clear()
        forwards[0] = 0
        with warnings.catch_warnings():
            warnings.simplefilter("always")
            warnings.showwarning = on_warning
            if device == "cuda":
                torch.cuda.synchronize()
                torch.cuda.set_sync_debug_mode("warn")
            try:
                with Reads():
                    for _ in range(updates):
                        update()
            finally:
                if device == "cuda":
                    torch.cuda.set_sync_debug_mode("default")
        cuda = device == "cuda"
        results.append(
            {
                "criterion": label,
                "baseline": baseline,
                "model_forwards_per_update": forwards[0] / updates,
                "criterion_host_reads_per_update": counts["criterion"] / updates,
                "model_host_reads_per_update": counts["model"] / updates,
                "host_reads": {k: v / updates for k, v in sorted(kinds.items())},
                "criterion_cuda_syncs_per_update": counts["criterion_syncs"] / updates if cuda else None,
                "model_cuda_syncs_per_update": counts["model_syncs"] / updates if cuda else None,
            }
        )
    by_label = {r["criterion"]: r for r in results}
    for r in results:
        r["failures"] = []
        base = by_label.get(r["baseline"])
        if base is None:
            continue
        key = "criterion_host_reads_per_update"
        if r[key] > base[key]:
            r["failures"].append(
                f"host reads of the criterion per update: {r[key]:g}, its stock criterion's {base[key]:g}"
            )
        # synchronisations in the model's backward run outside its forward, once per graph: compared per forward pass
        key = "criterion_cuda_syncs_per_update"
        if r[key] is not None:
            mine, theirs = r[key] / r["model_forwards_per_update"], base[key] / base["model_forwards_per_update"]
            if mine > theirs:
                r["failures"].append(
                    f"CUDA synchronisations outside the model's forward, per forward pass: {mine:g}, its stock "
                    f"criterion's {theirs:g}"
                )
    return results


# ------------------------------------------------------------------------------------------------ report


def cost_check(size, device: str, out: str) -> Dict:
    path = os.path.join(out, "cost.json")
    argv = [sys.executable, os.path.join(HERE, "cost.py"), *size["cost"], *size["cost_rounds"], "--device", device]
    argv += ["--methods", size["cost_methods"], "--json", path] + (["--fp16"] if device == "cuda" else [])
    started = time.time()
    proc = subprocess.run(argv, stdout=subprocess.PIPE, stderr=subprocess.STDOUT, text=True, cwd=REPO)
    result = {"check": "cost", "seconds": round(time.time() - started, 1), "command": argv[1:], "failures": []}
    if proc.returncode != 0:
        result["failures"].append(f"benchmarks/cost.py exited {proc.returncode}: {proc.stdout[-2000:]}")
        return result
    result["table"] = proc.stdout[proc.stdout.index("|") :].strip() if "|" in proc.stdout else ""
    with open(path, encoding="utf-8") as f:
        result["results"] = json.load(f)["results"]
    return result


def markdown(report: Dict) -> str:
    lines = [f"# Device check: {report['device']}", "", f"{report['setup']}", ""]
    lines += [
        "## Training",
        "",
        "| run | exit | updates | s | loss first → last | overflows | noise_changed_pct | R4F σ_max | failures |",
        "|---|---|---|---|---|---|---|---|---|",
    ]
    for t in report["training"]:
        pct = t["noise_changed_pct"]
        pct_text = f"{min(pct):.1f}-{max(pct):.1f}" if pct else "n/a"
        sigma = ", ".join(f"{k} {v:.4f}" for k, v in t.get("spectral_norms", {}).items()) or "-"
        losses = f"{t['first_loss']} → {t['last_loss']}"
        lines.append(
            f"| {t['check']} | {t['exit']} | {t['updates']} | {t['seconds']} | {losses} | {t['overflows']} | "
            f"{pct_text} | {sigma} | {'; '.join(t['failures']) or 'none'} |"
        )
    lines += [
        "",
        "## Host reads per update (forward + backward)",
        "",
        "| criterion | model forwards | host reads: criterion / model | CUDA syncs: criterion / model | "
        "against | failures |",
        "|---|---|---|---|---|---|",
    ]
    for r in report["host_reads"]:
        if r["criterion_cuda_syncs_per_update"] is None:
            syncs = "n/a"
        else:
            syncs = f"{r['criterion_cuda_syncs_per_update']:g} / {r['model_cuda_syncs_per_update']:g}"
        lines.append(
            f"| {r['criterion']} | {r['model_forwards_per_update']:g} | {r['criterion_host_reads_per_update']:g} / "
            f"{r['model_host_reads_per_update']:g} | {syncs} | {r['baseline'] or '(stock)'} | "
            f"{'; '.join(r['failures']) or 'none'} |"
        )
    cost = report["cost"]
    lines += ["", "## Cost per update (benchmarks/cost.py)", "", cost.get("table", "") or "; ".join(cost["failures"])]
    lines += ["", f"Failures: {len(report['failures'])}" + "".join(f"\n- {f}" for f in report["failures"]), ""]
    return "\n".join(lines)


def main(argv=None) -> int:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--device", choices=["cuda", "cpu"], default="cuda", help="where to run (default cuda)")
    parser.add_argument("--tiny", action="store_true", help="tiny shapes and a few updates (the CPU run of make test)")
    parser.add_argument("--out", required=True, help="the folder for gpu_check.json, gpu_check.md and the logs")
    args = parser.parse_args(argv)
    import torch

    if args.device == "cuda" and not torch.cuda.is_available():
        print("gpu_check: --device cuda, but torch sees no CUDA device (use --device cpu --tiny)", file=sys.stderr)
        return 1
    size = SIZES["tiny" if args.tiny else "full"]
    os.makedirs(args.out, exist_ok=True)
    work = os.path.join(args.out, "work")
    started = time.time()
    print("gpu_check: generating data ...", flush=True)
    data = make_data(os.path.join(work, "data"), size)
    # fairseq 0.12 turns --bf16 into its TPU path (options.py: args.tpu = True), which fails on a GPU: fp16 only
    precisions = ["fp32"] if args.device == "cpu" else ["fp16"]
    # side by side on a GPU (minutes of device time saved); one after the other on the CPU, whose 2 cores the tests
    # share with other tests
    together = args.device == "cuda"
    print(f"gpu_check: training ({', '.join(precisions)}, {'side by side' if together else 'in turn'}) ...", flush=True)
    runs, training = [], []
    for precision in precisions:
        for name in ("r3f", "r4f", "lsce_r3f"):
            run = start_training(name, precision, data, size, args.device, size["updates"], work)
            if together:
                runs.append(run)
            else:
                training.append(finish_training(run))
    training += [finish_training(run) for run in runs]
    for t in training:
        print(f"gpu_check: {t['check']}: exit {t['exit']}, {t['seconds']} s, {len(t['failures'])} failures", flush=True)
    # host reads do not depend on the model's size: counted on tiny shapes, on the device and precision of the runs
    print("gpu_check: host reads per update ...", flush=True)
    tiny_data = data if args.tiny else make_data(os.path.join(work, "tiny_data"), SIZES["tiny"])
    reads = host_reads(tiny_data, SIZES["tiny"], args.device, precisions[0])
    print("gpu_check: cost per update (benchmarks/cost.py) ...", flush=True)
    cost = cost_check(size, args.device, args.out)
    from rxf_repro.provenance import provenance

    device = torch.cuda.get_device_name() if args.device == "cuda" else "CPU"
    report = {
        **provenance(),
        "device": f"{device}, torch {torch.__version__}",
        "setup": f"{'tiny' if args.tiny else 'RoBERTa-large / BART-large'} shapes, random weights, generated data; "
        f"precisions {', '.join(precisions)} (not --bf16: fairseq 0.12 runs it as its TPU path, which fails on a GPU)",
        "training": training,
        "host_reads": reads,
        "cost": cost,
        "seconds": round(time.time() - started, 1),
    }
    report["failures"] = [f"{t['check']}: {f}" for t in training for f in t["failures"]]
    report["failures"] += [f"host reads, {r['criterion']}: {f}" for r in reads for f in r["failures"]]
    report["failures"] += [f"cost: {f}" for f in cost["failures"]]
    with open(os.path.join(args.out, "gpu_check.json"), "w", encoding="utf-8") as f:
        json.dump(report, f, indent=2)
        f.write("\n")
    text = markdown(report)
    with open(os.path.join(args.out, "gpu_check.md"), "w", encoding="utf-8") as f:
        f.write(text)
    print(text)
    print(f"gpu_check: {len(report['failures'])} failures, {report['seconds']} s; written {args.out}/gpu_check.md")
    return 1 if report["failures"] else 0


if __name__ == "__main__":
    sys.exit(main())
