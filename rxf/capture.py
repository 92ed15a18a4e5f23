"""Reuse fairseq's stock criteria verbatim and still see the model output they computed."""

import contextlib
from typing import Any, Iterator, List

from torch import nn


@contextlib.contextmanager
def captured_outputs(module: nn.Module) -> Iterator[List[Any]]:
    """Collect every output ``module`` returns inside the block (forward hook, removed on exit).

    The R3F criteria call the stock criterion's ``forward`` for the task loss and its metrics, so
    both stay exactly fairseq's, and take the clean-pass output from here instead of recomputing it.
    """
    outputs: List[Any] = []
    handle = module.register_forward_hook(lambda _module, _args, output: outputs.append(output))
    try:
        yield outputs
    finally:
        handle.remove()


def single_output(outputs: List[Any], who: str) -> Any:
    if len(outputs) != 1:
        raise RuntimeError(f"{who}: expected the model to be called once, it was called {len(outputs)} times")
    return outputs[0]
