"""fairseq checkpoints on torch >= 2.6, where ``torch.load`` defaults to ``weights_only=True``.

fairseq's checkpoints hold more than tensors (``argparse.Namespace`` options, omegaconf containers, numpy scalars,
fairseq's tensor placeholder): we allow-list exactly these plain-data classes, never switching ``weights_only`` off,
so a checkpoint whose unpickling would call anything else is still refused before it runs, naming the file."""

import argparse
import collections
import functools
import pickle
import typing

import torch
from omegaconf import DictConfig, ListConfig
from omegaconf.base import ContainerMetadata, Metadata
from omegaconf.nodes import AnyNode


def checkpoint_safe_globals() -> list:
    """Classes fairseq checkpoints legitimately contain; each only carries data, never code."""
    import numpy as np
    from fairseq.distributed.utils import _TensorPlaceholder

    safe: list = [argparse.Namespace, collections.OrderedDict, collections.defaultdict, _TensorPlaceholder]

    scalar = (getattr(np, "_core", None) or np.core).multiarray.scalar
    # numpy 1.x pickles name numpy.core, numpy 2.x numpy._core; accept both spellings.
    safe += [scalar, (scalar, "numpy.core.multiarray.scalar"), (scalar, "numpy._core.multiarray.scalar")]
    safe += [np.dtype] + [type(np.dtype(t)) for t in ("float64", "float32", "float16", "int64", "int32", "bool")]

    # omegaconf containers, as pickled by fairseq versions that saved a DictConfig
    safe += [DictConfig, ListConfig, ContainerMetadata, Metadata, AnyNode, typing.Any, dict, list, int]
    return safe


class UnsafeCheckpointError(RuntimeError):
    """A checkpoint whose unpickling would run code that is not on the allow-list."""


def allow_checkpoint_classes() -> None:
    """Put fairseq's checkpoint classes on torch's process-wide allow-list, before every load: a
    ``torch.serialization.safe_globals([...])`` block (transformers' Trainer resuming) takes its classes off on exit."""
    add_safe_globals = getattr(torch.serialization, "add_safe_globals", None)
    if add_safe_globals is not None:  # torch < 2.4 has no weights_only default to work around
        add_safe_globals(checkpoint_safe_globals())


@functools.cache  # once per process
def install() -> None:
    """Allow-list fairseq's checkpoint classes and give unsafe checkpoints a clear error."""
    allow_checkpoint_classes()

    from fairseq import checkpoint_utils

    original = checkpoint_utils.load_checkpoint_to_cpu

    @functools.wraps(original)
    def load_checkpoint_to_cpu(path, *args, **kwargs):
        allow_checkpoint_classes()  # again: another library may have taken some off the process-wide list
        try:
            state = original(path, *args, **kwargs)
        except pickle.UnpicklingError as error:
            raise UnsafeCheckpointError(
                f"refused to load checkpoint {path}: unpickling it would call objects that a fairseq "
                f"checkpoint never contains, so it may run arbitrary code. Nothing from it was executed. "
                f"If you made this file yourself and trust it, inspect it first; torch said: {error}"
            ) from None
        # Released checkpoints (RoBERTa, BART) have no "criterion" entry: fairseq wrote one only for a criterion
        # with parameters, and its trainer reads state["criterion"] when the criterion it loads into has some
        # (SMART's teacher). None is what fairseq 0.12 writes for a criterion without parameters.
        if isinstance(state, dict):
            state.setdefault("criterion", None)
        return state

    checkpoint_utils.load_checkpoint_to_cpu = load_checkpoint_to_cpu
