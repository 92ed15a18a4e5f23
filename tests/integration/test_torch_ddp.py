"""R3F/R4F under torch's DistributedDataParallel (fairseq's default ``--ddp-backend pytorch_ddp`` on
GPUs), on two CPU processes with gloo: fairseq itself cannot run that backend on CPU."""

import gc
import os
import socket
import time

import pytest
import torch
import torch.distributed as dist
import torch.multiprocessing as mp

DEADLINE_S = 120  # the two steps take seconds; past this a worker is stuck, and the test kills both


def _train(rank, data, results):
    from fairseq.distributed import ModuleProxyWrapper

    import rxf_fairseq  # noqa: F401
    from tests.helpers import build, classification_args, first_batch

    task, model, criterion, _ = build(classification_args(data, ["--task", "sentence_prediction_r4f"]))
    # --find-unused-parameters, as for stock RoBERTa fine-tuning: the LM head gets no gradient
    wrapped = ModuleProxyWrapper(torch.nn.parallel.DistributedDataParallel(model, find_unused_parameters=True))
    wrapped.train()
    sample = first_batch(task, batch_size=4 + rank)  # different batches on the two ranks
    for _ in range(2):  # two steps: the reducer must survive two forwards per backward, twice
        loss, _, log = criterion(wrapped, sample)
        loss.backward()
    grads = torch.cat([p.grad.flatten() for p in model.classification_heads.parameters()])
    results.put((rank, grads.numpy().tobytes(), log["symm_kl"].item(), grads.abs().sum().item()))


def _worker(rank, data, port, results):
    os.environ.update(MASTER_ADDR="127.0.0.1", MASTER_PORT=str(port))
    dist.init_process_group("gloo", rank=rank, world_size=2)
    try:
        _train(rank, data, results)
        # the DDP reducer freed before the group: a reducer that holds the group's last reference destroys it with the
        # GIL held, and the group's destructor joins a gloo thread that needs the GIL to free its last work (torch 2.13:
        # a deadlock at exit, one run in a few)
        gc.collect()
    finally:
        dist.destroy_process_group()


def test_r4f_under_torch_ddp_two_cpu_workers(toy_data):
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        port = s.getsockname()[1]
    # forks of this interpreter (torch, fairseq and the plugin imported already), not fresh ones; gloo runs in forks
    results = mp.get_context("fork").SimpleQueue()
    workers = mp.start_processes(
        _worker, args=(toy_data["cls"], port, results), nprocs=2, start_method="fork", join=False
    )
    deadline = time.monotonic() + DEADLINE_S
    try:
        while not workers.join(timeout=max(deadline - time.monotonic(), 0.1)):
            if time.monotonic() > deadline:
                pytest.fail(f"the DDP workers ran past {DEADLINE_S} s")
    finally:
        for process in workers.processes:
            process.kill()
            process.join()
    by_rank = dict((rank, rest) for rank, *rest in (results.get() for _ in range(2)))
    assert by_rank[0][0] == by_rank[1][0], "DDP left different gradients on the two ranks"
    for _, symm_kl, grad_mass in by_rank.values():
        assert symm_kl > 0 and grad_mass > 0
