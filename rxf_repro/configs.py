"""``configs/``: the paper's hyper-parameters as fairseq-hydra-train configs (``glue/`` for GLUE and XNLI,
``summarization/``; ``method/*.yaml`` with their search grids as ``hydra.sweeper.params``), and the one way the harness
reads them: ``compose``, as fairseq-hydra-train composes them. A non-editable install ships them inside the package
(``rxf_repro/configs``, copied there by setup.py); a source checkout reads the repository's ``configs/``."""

import functools
import logging
import os
from typing import Any, Dict, List, Optional, Sequence, Tuple

import yaml

from rxf_repro.cli import UserError

SOURCE_CONFIGS = os.path.join(os.path.dirname(os.path.dirname(os.path.abspath(__file__))), "configs")
PACKAGED_CONFIGS = os.path.join(os.path.dirname(os.path.abspath(__file__)), "configs")
# rxf-run's families -> the folder of their configs
FOLDERS = {"glue": "glue", "xnli": "glue", "probe": "glue", "summarization": "summarization"}


def config_root() -> str:
    return PACKAGED_CONFIGS if os.path.isdir(PACKAGED_CONFIGS) else SOURCE_CONFIGS


def folder(family: str, root: Optional[str] = None) -> str:
    return os.path.join(root or config_root(), FOLDERS[family])


@functools.lru_cache(maxsize=None)
def read_yaml(path: str) -> Dict[str, Any]:
    """One config file as plain data (no composition: for the facts a single file holds)."""
    with open(path, encoding="utf-8") as f:
        return yaml.safe_load(f) or {}


def methods(family: str, root: Optional[str] = None) -> List[str]:
    path = os.path.join(folder(family, root), "method")
    return sorted(name[:-5] for name in os.listdir(path) if name.endswith(".yaml"))


def parse_grid(params: Dict[str, Any]) -> Dict[str, List[str]]:
    """``hydra.sweeper.params`` as Hydra's own override grammar reads a sweep (``0.1,0.5``, ``range(...)``, ...)."""
    from hydra.core.override_parser.overrides_parser import OverridesParser

    parser = OverridesParser.create()
    grid = {}
    for key, values in params.items():
        override = parser.parse_override(f"{key}={values}")
        grid[key] = list(override.sweep_string_iterator()) if override.is_sweep_override() else [str(values)]
    return grid


def compose(
    family: str, name: str, method: str, overrides: Sequence[str] = (), root: Optional[str] = None
) -> Tuple[Dict[str, Any], Dict[str, List[str]]]:
    """(config, search grid) of ``FOLDER/NAME.yaml``, ``method=METHOD`` and overrides, as fairseq-hydra-train does."""
    from hydra import compose as hydra_compose
    from hydra import initialize_config_dir
    from hydra.core.global_hydra import GlobalHydra
    from hydra.version import VersionBase
    from omegaconf import OmegaConf

    where = folder(family, root)
    path = os.path.join(where, f"{name}.yaml")
    if not os.path.isfile(path):
        raise UserError(f"no config {path}")
    if not os.path.isfile(os.path.join(where, "method", f"{method}.yaml")):
        raise UserError(
            f"method {method!r} has no config in {where}/method (known: {', '.join(methods(family, root))})"
        )
    logging.getLogger("hydra").setLevel(logging.WARNING)
    GlobalHydra.instance().clear()
    # ``version_base=None`` sets a process-wide Hydra version that fairseq's own (1.1-style) config code,
    # e.g. ``convert_namespace_to_omegaconf``, refuses afterwards: restore it
    version_base = VersionBase.instance().version_base
    try:
        with initialize_config_dir(config_dir=os.path.abspath(where), version_base=None):
            cfg = hydra_compose(config_name=name, overrides=[f"method={method}", *overrides], return_hydra_config=True)
    except Exception as error:  # hydra's override grammar and merge errors
        raise UserError(f"{path} with {list(overrides)}: {error}") from None
    finally:
        GlobalHydra.instance().clear()
        VersionBase.instance().version_base = version_base
    grid = parse_grid(dict(cfg.hydra.sweeper.get("params") or {}))
    container = OmegaConf.to_container(cfg, resolve=False)
    container.pop("hydra", None)
    return container, grid
