"""rxf_fairseq.checkpoint_compat: released checkpoints load with torch's weights_only unpickler, and keep loading
whatever other libraries in the same process do to torch's allow-list."""

import numpy as np
import torch

import rxf_fairseq  # noqa: F401  installs the allow-list and the loader


def released_layout_checkpoint(path):
    """What fairseq's released RoBERTa/BART checkpoints hold besides tensors: numpy scalars in extra_state."""
    state = {"model": {"w": torch.ones(2)}, "args": None, "extra_state": {"val_loss": np.float64(1.5)}}
    state["optimizer_history"] = [{"criterion_name": "CrossEntropyCriterion", "lr_scheduler_state": {}}]
    torch.save(state, path)


def test_a_released_checkpoint_loads_after_another_library_narrowed_the_allow_list(tmp_path):
    from fairseq import checkpoint_utils

    path = str(tmp_path / "released.pt")
    released_layout_checkpoint(path)
    # transformers' Trainer resumes inside torch.serialization.safe_globals([... numpy.dtype ...]), which takes
    # those classes off the process-wide list when it exits, whoever had put them there
    with torch.serialization.safe_globals([np.dtype]):
        pass
    assert np.dtype not in torch.serialization.get_safe_globals()
    state = checkpoint_utils.load_checkpoint_to_cpu(path)
    assert float(state["extra_state"]["val_loss"]) == 1.5 and state["criterion"] is None
