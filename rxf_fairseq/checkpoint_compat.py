"""fairseq checkpoints on torch >= 2.6, where ``torch.load`` defaults to ``weights_only=True``.

fairseq's checkpoints hold more than tensors: the training options as an ``argparse.Namespace``
(old releases: ``state["args"]``; newer ones nest Namespaces inside ``state["cfg"]``), omegaconf
containers in some versions, numpy scalars in ``extra_state``, and fairseq's own tensor placeholder
when a checkpoint is broadcast to other workers. We allow-list exactly these plain-data classes with
``torch.serialization.add_safe_globals``. We never switch ``weights_only`` off: a checkpoint whose
unpickling would call anything else (``os.system``, ``eval``, ...) is still refused before it runs,
and we re-raise that refusal naming the file.
"""

import argparse
import collections
import functools
import logging
import pickle
import typing

import torch

logger = logging.getLogger(__name__)

_INSTALLED = False


def checkpoint_safe_globals() -> list:
    """Classes fairseq checkpoints legitimately contain; each only carries data, never code."""
    import numpy as np
    from fairseq.distributed.utils import _TensorPlaceholder

    safe: list = [argparse.Namespace, collections.OrderedDict, collections.defaultdict, _TensorPlaceholder]

    multiarray = getattr(np, "_core", None) or np.core
    scalar = multiarray.multiarray.scalar
    # numpy 1.x pickles name numpy.core, numpy 2.x numpy._core; accept both spellings.
    safe += [scalar, (scalar, "numpy.core.multiarray.scalar"), (scalar, "numpy._core.multiarray.scalar")]
    safe.append(np.dtype)
    safe += [type(np.dtype(t)) for t in ("float64", "float32", "float16", "int64", "int32", "bool")]

    try:  # omegaconf containers, as pickled by fairseq versions that saved a DictConfig
        from omegaconf import DictConfig, ListConfig
        from omegaconf.base import ContainerMetadata, Metadata
        from omegaconf.nodes import AnyNode

        safe += [DictConfig, ListConfig, ContainerMetadata, Metadata, AnyNode, typing.Any, dict, list, int]
    except ImportError:  # pragma: no cover - fairseq depends on omegaconf
        pass
    return safe


class UnsafeCheckpointError(RuntimeError):
    """A checkpoint whose unpickling would run code that is not on the allow-list."""


def _refuse(path, error: pickle.UnpicklingError) -> UnsafeCheckpointError:
    return UnsafeCheckpointError(
        f"refused to load checkpoint {path}: unpickling it would call objects that a fairseq "
        f"checkpoint never contains, so it may run arbitrary code. Nothing from it was executed. "
        f"If you made this file yourself and trust it, inspect it first; torch said: {error}"
    )


def allow_checkpoint_classes() -> None:
    """Put fairseq's checkpoint classes on torch's process-wide allow-list (a set: adding twice is harmless).
    Done before every load, not once: ``torch.serialization.safe_globals([...])``, as transformers' Trainer uses it
    to resume, takes its classes (``numpy.dtype`` among them) off the list when it exits, ours included."""
    add_safe_globals = getattr(torch.serialization, "add_safe_globals", None)
    if add_safe_globals is not None:  # torch < 2.4 has no weights_only default to work around
        add_safe_globals(checkpoint_safe_globals())


def install() -> None:
    """Allow-list fairseq's checkpoint classes and give unsafe checkpoints a clear error. Idempotent."""
    global _INSTALLED
    if _INSTALLED:
        return
    allow_checkpoint_classes()

    from fairseq import checkpoint_utils

    original = checkpoint_utils.load_checkpoint_to_cpu

    @functools.wraps(original)
    def load_checkpoint_to_cpu(path, *args, **kwargs):
        allow_checkpoint_classes()  # again: another library may have taken some off the process-wide list
        try:
            state = original(path, *args, **kwargs)
        except pickle.UnpicklingError as error:
            raise _refuse(path, error) from None
        # Released checkpoints (RoBERTa, BART) have no "criterion" entry: fairseq wrote one only for a criterion
        # with parameters, and its trainer reads state["criterion"] when the criterion it loads into has some
        # (SMART's teacher). None is what fairseq 0.12 writes for a criterion without parameters.
        if isinstance(state, dict):
            state.setdefault("criterion", None)
        return state

    load_checkpoint_to_cpu.__wrapped_by_rxf__ = True
    checkpoint_utils.load_checkpoint_to_cpu = load_checkpoint_to_cpu
    _INSTALLED = True
