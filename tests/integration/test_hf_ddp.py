"""rxf.hf's trainers under transformers' DDP: two torchrun processes (gloo, CPU)."""

import os

import pytest
import torch

from tests.helpers import REPO


@pytest.mark.parametrize("method", ["r3f", "r4f", "smart", "rdrop"])
def test_two_processes_under_ddp_stay_identical_and_log_the_mean_of_both(tmp_path, method):
    """transformers' DDP (torchrun, gloo on CPU): each process perturbs its own batches; the models (R4F's
    power-iteration vectors included, and SMART's teachers) stay identical, and the logged terms are the mean over
    both processes' batches, as the loss is. Two forward passes before one backward under DDP's buffer broadcast
    (torch 2.11 failed with "modified by an inplace operation" before the terms' passes skipped it)."""
    import socket
    import subprocess
    import sys

    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        port = s.getsockname()[1]
    torchrun = os.path.join(os.path.dirname(sys.executable), "torchrun")
    worker = os.path.join(REPO, "tests", "hf_ddp_worker.py")
    proc = subprocess.run(
        [torchrun, "--nproc_per_node", "2", "--master_addr", "127.0.0.1", "--master_port", str(port), worker]
        + [method, str(tmp_path)],
        capture_output=True,
        text=True,
        timeout=300,
    )
    assert proc.returncode == 0, proc.stderr[-3000:]
    ranks = [torch.load(str(tmp_path / f"rank{r}.pt"), weights_only=True) for r in (0, 1)]
    assert ranks[0]["world"] == ranks[1]["world"] == 2
    # one buffer broadcast per update, at the clean pass, as stock DDP: the terms' passes skip it (on torch 2.13,
    # whose broadcast keeps the version counter, this is what fails if they stop skipping it)
    assert ranks[0]["broadcasts"] == ranks[1]["broadcasts"] == 3
    state0, state1 = ranks[0]["state"], ranks[1]["state"]
    assert state0.keys() == state1.keys() and any(k.startswith("teacher.") for k in state0) == (method == "smart")
    for name in state0:
        assert torch.equal(state0[name], state1[name]), name
    key = {"smart": "smart_symm_kl", "rdrop": "rdrop_kl"}.get(method, "symm_kl")
    assert len(ranks[0]["logs"]) == 3 and all(entry[key] > 0 for entry in ranks[0]["logs"])
    assert ranks[0]["logs"] == ranks[1]["logs"]  # every logged value reduced over the two processes
