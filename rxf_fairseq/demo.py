"""``rxf-demo`` (``make demo``): standard, R3F and R4F fine-tuning of a tiny RoBERTa, side by side.

Everything is generated here and runs on a laptop CPU in a few minutes: a toy sentiment-with-negation
dataset (``rxf_fairseq.toy``), a tiny RoBERTa pretrained with fairseq's ``masked_lm`` and saved as a
normal fairseq checkpoint, then three ``fairseq-train --user-dir rxf_fairseq`` fine-tuning runs from
it through ``--restore-file``, exactly as with a real RoBERTa checkpoint.
"""

import argparse
import json
import os
import shutil
import subprocess
import sys
import time
from typing import Dict, List

from rxf_fairseq import toy

USER_DIR = os.path.dirname(os.path.abspath(__file__))
TINY_ROBERTA = [
    "--arch", "roberta_base", "--encoder-layers", "2", "--encoder-embed-dim", "64",
    "--encoder-ffn-embed-dim", "128", "--encoder-attention-heads", "4", "--max-positions", "64",
]
METHODS = {
    "standard": ["--task", "sentence_prediction", "--criterion", "sentence_prediction"],
    "R3F": ["--task", "sentence_prediction", "--criterion", "sentence_prediction_r3f"],
    "R4F": ["--task", "sentence_prediction_r4f", "--criterion", "sentence_prediction_r3f"],
}


def log(message: str) -> None:
    print(message, file=sys.stderr, flush=True)


def fairseq_train(argv: List[str], log_path: str) -> List[Dict]:
    """Run fairseq-train, keep its full log, return its ``--log-format json`` records."""
    with open(log_path, "w") as f:
        proc = subprocess.run([sys.executable, "-m", "fairseq_cli.train", *argv],
                              stdout=f, stderr=subprocess.STDOUT, text=True)
    output = open(log_path).read()
    if proc.returncode != 0:
        raise SystemExit(f"rxf-demo: fairseq-train failed (exit {proc.returncode}); its log: {log_path}\n"
                         + output[-3000:])
    records = []
    for line in output.splitlines():
        for kind in ("train", "valid"):
            if f"| {kind} | " in line:
                records.append({"kind": kind, **json.loads(line.split(f"| {kind} | ", 1)[1])})
    return records


def prepare_data(out: str, workers: int) -> Dict[str, str]:
    raw, data = os.path.join(out, "raw"), os.path.join(out, "data")
    toy.write_classification_raw(raw, {"train": 2000, "valid": 500}, seed=1)
    toy.binarize_sentence_prediction(raw, os.path.join(data, "cls"), workers=workers)
    toy.write_classification_raw(os.path.join(raw, "lm"), {"train": 6000, "valid": 500}, seed=2)
    for split in ("train", "valid"):
        os.replace(os.path.join(raw, "lm", f"{split}.input0"), os.path.join(raw, f"lm.{split}"))
    toy.binarize_monolingual(os.path.join(raw, "lm"), os.path.join(data, "lm"),
                             os.path.join(data, "cls", "input0", "dict.txt"), workers=workers)
    return {"cls": os.path.join(data, "cls"), "lm": os.path.join(data, "lm")}


def pretrain(out: str, lm_data: str, updates: int, seed: int) -> str:
    save_dir = os.path.join(out, "pretrained")
    records = fairseq_train([
        lm_data, "--user-dir", USER_DIR, "--task", "masked_lm", "--criterion", "masked_lm", *TINY_ROBERTA,
        "--tokens-per-sample", "32", "--optimizer", "adam", "--adam-betas", "(0.9,0.98)", "--lr", "5e-4",
        "--lr-scheduler", "polynomial_decay", "--warmup-updates", str(updates // 10), "--total-num-update",
        str(updates), "--batch-size", "32", "--max-update", str(updates), "--save-dir", save_dir,
        "--no-epoch-checkpoints", "--cpu", "--seed", str(seed), "--log-format", "json", "--log-interval", "50",
    ], os.path.join(out, "pretrain.log"))
    valid = [r for r in records if r["kind"] == "valid"][-1]
    log(f"    masked-LM valid loss {float(valid['valid_loss']):.3f} bits/token after {updates} updates")
    return os.path.join(save_dir, "checkpoint_last.pt")


def finetune(out: str, method: str, cls_data: str, checkpoint: str, updates: int, seed: int,
             r3f_lambda: float, eps: float) -> Dict:
    save_dir = os.path.join(out, "finetune", method)
    argv = [
        cls_data, "--user-dir", USER_DIR, *METHODS[method], "--num-classes", "2", "--init-token", "0",
        "--separator-token", "2", *TINY_ROBERTA, "--restore-file", checkpoint, "--reset-optimizer",
        "--reset-dataloader", "--reset-meters", "--optimizer", "adam", "--adam-betas", "(0.9,0.98)",
        "--adam-eps", "1e-6", "--lr", "1e-3", "--lr-scheduler", "polynomial_decay", "--warmup-updates",
        str(int(0.06 * updates)), "--total-num-update", str(updates), "--max-update", str(updates),
        "--batch-size", "32", "--dropout", "0.1", "--weight-decay", "0.01", "--best-checkpoint-metric",
        "accuracy", "--maximize-best-checkpoint-metric", "--save-dir", save_dir, "--no-epoch-checkpoints",
        "--no-last-checkpoints", "--cpu", "--seed", str(seed), "--log-format", "json", "--log-interval", "20",
    ]
    if method != "standard":
        argv += ["--r3f-lambda", str(r3f_lambda), "--eps", str(eps), "--noise-type", "uniform"]
    started = time.time()
    records = fairseq_train(argv, os.path.join(out, f"finetune-{method}.log"))
    elapsed = time.time() - started
    train = [r for r in records if r["kind"] == "train"]
    valid = [r for r in records if r["kind"] == "valid"]
    return {
        "method": method,
        "best_valid_accuracy": max(float(r["valid_accuracy"]) for r in valid),
        "final_valid_accuracy": float(valid[-1]["valid_accuracy"]),
        "train_accuracy": float(train[-1]["train_accuracy"]),
        "symm_kl": float(train[-1]["train_symm_kl"]) if "train_symm_kl" in train[-1] else None,
        "updates_per_second": sum(float(r["train_ups"]) for r in train) / len(train),
        "run_seconds": round(elapsed, 1),
    }


def table(results: List[Dict]) -> str:
    base = next(r for r in results if r["method"] == "standard")["updates_per_second"]
    lines = ["| method | best valid acc (%) | final valid acc (%) | train acc (%) | symm KL | "
             "updates/s | time per update vs standard |", "|---|---|---|---|---|---|---|"]
    for r in results:
        kl = "-" if r["symm_kl"] is None else f"{r['symm_kl']:.3g}"
        lines.append(f"| {r['method']} | {r['best_valid_accuracy']:.1f} | {r['final_valid_accuracy']:.1f} | "
                     f"{r['train_accuracy']:.1f} | {kl} | {r['updates_per_second']:.1f} | "
                     f"{base / r['updates_per_second']:.2f}x |")
    return "\n".join(lines)


def main(argv=None) -> None:
    parser = argparse.ArgumentParser(prog="rxf-demo", description=__doc__,
                                     formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--output", default="demo_output", help="folder for data, logs and results")
    parser.add_argument("--pretrain-updates", type=int, default=600)
    parser.add_argument("--finetune-updates", type=int, default=300)
    parser.add_argument("--r3f-lambda", type=float, default=1.0)
    parser.add_argument("--eps", type=float, default=1e-5)
    parser.add_argument("--seed", type=int, default=1)
    parser.add_argument("--workers", type=int, default=1, help="fairseq-preprocess workers")
    args = parser.parse_args(argv)
    for name in ("pretrain_updates", "finetune_updates"):
        if getattr(args, name) < 1:
            parser.error(f"--{name.replace('_', '-')} must be >= 1")

    out = os.path.abspath(args.output)
    if os.path.exists(out):
        shutil.rmtree(out)
    os.makedirs(out)
    log(f"[1/3] toy sentiment data (2000 train / 500 valid sentences) -> {out}/data")
    data = prepare_data(out, args.workers)
    log(f"[2/3] pretraining a tiny RoBERTa (masked_lm, {args.pretrain_updates} updates)")
    checkpoint = pretrain(out, data["lm"], args.pretrain_updates, args.seed)
    results = []
    for i, method in enumerate(METHODS, 1):
        log(f"[3/3] fine-tuning {i}/{len(METHODS)}: {method} ({args.finetune_updates} updates)")
        results.append(finetune(out, method, data["cls"], checkpoint, args.finetune_updates, args.seed,
                                args.r3f_lambda, args.eps))
        log(f"    best valid accuracy {results[-1]['best_valid_accuracy']:.1f}% in {results[-1]['run_seconds']}s")
    with open(os.path.join(out, "results.json"), "w") as f:
        json.dump({"args": vars(args), "results": results}, f, indent=2)
    labels = open(os.path.join(out, "raw", "valid.label")).read().split()
    majority = 100.0 * max(labels.count(c) for c in set(labels)) / len(labels)
    report = table(results) + f"\n\nmajority-class baseline on valid: {majority:.1f}%"
    with open(os.path.join(out, "results.md"), "w") as f:
        f.write(report + "\n")
    print(report)
    print(f"\nlogs, checkpoints and results.json/results.md in {out}")


if __name__ == "__main__":
    main()
