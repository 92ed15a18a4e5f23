"""One process of tests/integration/test_hf_ddp.py's two-process run (``torchrun --nproc_per_node 2``): a tiny BERT trained
3 updates by R3FTrainer (after apply_r4f for r4f) or SMARTTrainer under transformers' DDP (gloo, CPU); writes its model
(and teacher) and its training logs to OUT/rankN.pt."""

import os
import sys

import torch

sys.path.insert(0, os.path.dirname(os.path.dirname(os.path.abspath(__file__))))


from rxf.hf import R3FTrainer, RDropTrainer, SMARTTrainer, apply_r4f  # noqa: E402
from tests.helpers import hf_training_args, tiny_bert  # noqa: E402


def count_buffer_broadcasts() -> list:
    """A list that gets one entry per DDP buffer broadcast (``DistributedDataParallel._sync_buffers``)."""
    calls: list = []
    ddp = torch.nn.parallel.DistributedDataParallel
    sync = ddp._sync_buffers

    def counted(self, *args, **kwargs):
        calls.append(1)
        return sync(self, *args, **kwargs)

    ddp._sync_buffers = counted
    return calls


def main(method: str, out: str) -> None:
    broadcasts = count_buffer_broadcasts()
    model = tiny_bert(hidden_dropout_prob=0.1, attention_probs_dropout_prob=0.1)  # the ranks draw their own dropout
    g = torch.Generator().manual_seed(1)
    data = [
        {
            "input_ids": torch.randint(5, 100, (10,), generator=g),
            "attention_mask": torch.ones(10, dtype=torch.long),
            "labels": torch.randint(0, 2, (), generator=g),
        }
        for _ in range(32)
    ]
    if method == "r4f":
        apply_r4f(model)  # its power-iteration vectors are buffers too, updated by every training forward
    args = hf_training_args(out, max_steps=3, logging_steps=1, ddp_backend="gloo")
    trainer_class = {"smart": SMARTTrainer, "rdrop": RDropTrainer}.get(method, R3FTrainer)
    trainer = trainer_class(model=model, args=args, train_dataset=data)
    trainer.train()
    state = dict(model.state_dict())
    if trainer.__class__ is SMARTTrainer:
        state.update({"teacher." + k: v for k, v in trainer.teacher.copies.items()})
    logs = [entry for entry in trainer.state.log_history if "loss" in entry]
    torch.save(
        {"state": state, "logs": logs, "world": args.world_size, "broadcasts": len(broadcasts)},
        os.path.join(out, f"rank{args.process_index}.pt"),
    )


if __name__ == "__main__":
    main(*sys.argv[1:])
