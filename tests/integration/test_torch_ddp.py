"""R3F/R4F under torch's DistributedDataParallel (fairseq's default ``--ddp-backend pytorch_ddp`` on
GPUs), on two CPU processes with gloo: fairseq itself cannot run that backend on CPU."""

import os
import socket

import torch
import torch.distributed as dist
import torch.multiprocessing as mp


def _worker(rank, data, port, results):
    os.environ.update(MASTER_ADDR="127.0.0.1", MASTER_PORT=str(port))
    dist.init_process_group("gloo", rank=rank, world_size=2)
    try:
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
        gathered = [torch.zeros_like(grads) for _ in range(2)]
        dist.all_gather(gathered, grads)
        if rank == 0:
            results.put((torch.equal(gathered[0], gathered[1]), log["symm_kl"].item(), grads.abs().sum().item()))
    finally:
        dist.destroy_process_group()


def test_r4f_under_torch_ddp_two_cpu_workers(toy_data):
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        port = s.getsockname()[1]
    # forks of this interpreter (torch, fairseq and the plugin imported already), not fresh ones; gloo runs in forks
    ctx = mp.get_context("fork")
    results = ctx.SimpleQueue()
    mp.start_processes(_worker, args=(toy_data["cls"], port, results), nprocs=2, start_method="fork")
    equal, symm_kl, grad_mass = results.get()
    assert equal, "DDP left different gradients on the two ranks"
    assert symm_kl > 0 and grad_mass > 0
