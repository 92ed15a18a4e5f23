"""Reuse fairseq's stock criteria verbatim and still see the model output they computed."""

import contextlib
from typing import Any, Iterator, List

from torch import nn


@contextlib.contextmanager
def captured_outputs(module: nn.Module) -> Iterator[List[Any]]:
    """Every output ``module`` returns inside the block."""
    outputs: List[Any] = []
    handle = module.register_forward_hook(lambda _module, _args, output: outputs.append(output))
    try:
        yield outputs
    finally:
        handle.remove()
