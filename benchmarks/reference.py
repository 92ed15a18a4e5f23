"""fairseq's own ``examples/rxf`` criterions, loadable next to ours: the cost benchmark's ``reference_r3f`` row
and the parity tests (which load this file through ``tests/helpers.benchmark_module``).

They register the same names as ours (``sentence_prediction_r3f``, ...), so they are imported from
the installed fairseq package with registration switched off rather than through ``--user-dir``.
"""

import importlib.util
import os
from types import ModuleType

import fairseq


def reference_rxf_path(module_name: str) -> str:
    path = os.path.join(os.path.dirname(fairseq.__file__), "examples", "rxf", "rxf_src", module_name + ".py")
    if not os.path.isfile(path):
        raise FileNotFoundError(f"fairseq's examples/rxf is not installed with this fairseq: {path}")
    return path


def load_reference_criterion(module_name: str) -> ModuleType:
    """Import ``examples/rxf/rxf_src/<module_name>.py`` without registering its criterion."""
    import fairseq.criterions as criterions

    original = criterions.register_criterion
    criterions.register_criterion = lambda *args, **kwargs: lambda cls: cls
    try:
        spec = importlib.util.spec_from_file_location(
            f"fairseq_reference_{module_name}", reference_rxf_path(module_name)
        )
        module = importlib.util.module_from_spec(spec)
        spec.loader.exec_module(module)
    finally:
        criterions.register_criterion = original
    return module
