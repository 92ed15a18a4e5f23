"""A composed config (``configs/``, ``rxf_repro/configs.py``) as a fairseq command line, checked by fairseq's own
parser before anything runs."""

import contextlib
import functools
import importlib.util
import io
import itertools
import os
import re
import shlex
from typing import Any, Dict, List, Optional, Sequence, Tuple

from rxf_repro.cli import UserError


def last_value(argv: Sequence[Any], flag: str) -> Optional[str]:
    """The value fairseq uses for ``flag`` in a command: its last occurrence (the last one wins, as in its parser)."""
    found = [i for i, item in enumerate(argv[:-1]) if item == flag]
    return str(argv[found[-1] + 1]) if found else None


# the plugin's folder, for --user-dir, found without importing it (that would import fairseq)
USER_DIR = os.path.dirname(importlib.util.find_spec("rxf_fairseq").origin)
# fairseq drops an evaluation's last batch when it is not a multiple of --required-batch-size-multiple (default 8):
# XNLI's 5,010 test sentences per language would be scored on 5,008. Every evaluation here keeps every example.
EVAL_BATCHES = ("--required-batch-size-multiple", "1")
# the config's sections that are fairseq-train's (``generation:`` is fairseq-generate's)
TRAIN_SECTIONS = tuple(
    "common distributed_training dataset optimization checkpoint task model criterion optimizer lr_scheduler".split()
)


def hydra_quote(path: str) -> str:
    """A path as a quoted Hydra override value: run folders hold '=' and ',' (``r3f_lambda=0.5,noise_type=...``),
    which Hydra's override grammar would otherwise parse."""
    # inside quotes Hydra un-escapes backslashes only before a quote or the closing quote: double those
    return "'" + re.sub(r"(\\+)(?='|$)", r"\1\1", path).replace("'", "\\'") + "'"


def settings(grid: Dict[str, List[str]], sweep: bool) -> List[Dict[str, str]]:
    """Every combination of the grid (``--sweep``), or the single setting the config holds."""
    if not sweep or not grid:
        return [{}]
    keys = sorted(grid)
    return [dict(zip(keys, values)) for values in itertools.product(*(grid[k] for k in keys))]


def hparams(cfg: Dict[str, Any], grid: Dict[str, List[str]]) -> Dict[str, Any]:
    """The values ``cfg`` gives the grid's keys (``criterion.r3f_lambda`` -> ``r3f_lambda``): a run's setting."""
    found = {}
    for dotted in sorted(grid):
        node: Any = cfg
        for part in dotted.split("."):
            node = node.get(part) if isinstance(node, dict) else None
        found[dotted.split(".")[-1]] = node
    return found


def as_flags(key: str, value: Any) -> List[str]:
    """``key: value`` as fairseq's ``--key VALUE...``: ``true`` a bare flag, ``false`` and null none."""
    if value is None or value is False:
        return []
    values = [] if value is True else value if isinstance(value, list) else [value]
    return ["--" + key.replace("_", "-"), *map(str, values)]


def generate_flags(cfg: Dict[str, Any]) -> List[str]:
    """The config's ``generation:`` section as fairseq-generate flags."""
    return [a for key, value in (cfg.get("generation") or {}).items() for a in as_flags(key, value)]


def train_command(cfg: Dict[str, Any]) -> List[str]:
    """The fairseq-train arguments for a composed config (``generation:`` is for fairseq-generate)."""
    missing = [f"{s}.{k}" for s in TRAIN_SECTIONS for k, v in (cfg.get(s) or {}).items() if v == "???"]
    if missing:
        raise UserError(f"required value(s) not given: {', '.join(missing)}")
    argv = [str(cfg["task"]["data"])]
    seen: Dict[str, List[str]] = {}
    for section in TRAIN_SECTIONS:
        for key, value in (cfg.get(section) or {}).items():
            if (section, key) in (("task", "data"), ("checkpoint", "save_dir")):
                continue  # the data is the positional argument; rxf-run gives every run its own --save-dir
            if key == "_name":  # the section's component: --task, --arch, --criterion, --optimizer, --lr-scheduler
                key = "arch" if section == "model" else section
            given = as_flags(key, value)
            if given and given[0] in seen and seen[given[0]] != given[1:]:  # e.g. task vs model.max_positions
                raise UserError(f"{given[0]} is set twice in the config, to {seen[given[0]]} and {given[1:]}")
            if given and given[0] not in seen:
                seen[given[0]] = given[1:]
                argv += given
    return argv


def check_overrides(overrides: Sequence[str], flag: str) -> None:
    """Every ``--set KEY=VALUE`` must name a section of the config: anything else would be dropped silently."""
    sections = TRAIN_SECTIONS + ("generation",)
    for item in overrides:
        key = item.lstrip("+~").split("=", 1)[0]
        if "=" not in item and not item.startswith("~"):
            raise UserError(f"{flag} {item}: expected KEY=VALUE, e.g. criterion.r3f_lambda=0.5")
        if key.split(".")[0] not in sections or "." not in key:
            raise UserError(f"{flag} {item}: {key!r} is not SECTION.KEY with SECTION one of {', '.join(sections)}")


@functools.cache  # a sweep repeats each command line per seed
def check_with_fairseq(argv: Tuple[str, ...], tool: str = "train") -> None:
    """fairseq's parser, then what fairseq-train would refuse when it builds our criterion (noise scale, lambda,
    SMART's options): a misspelt ``--set`` key fails now, not hours into a sweep."""
    from fairseq import options
    from fairseq.criterions import CRITERION_DATACLASS_REGISTRY, CRITERION_REGISTRY

    parser = options.get_training_parser() if tool == "train" else options.get_generation_parser()
    message = io.StringIO()
    try:
        with contextlib.redirect_stderr(message):
            parsed = options.parse_args_and_arch(parser, list(argv))
    except SystemExit:
        error = message.getvalue().strip().splitlines()[-1:] or ["invalid arguments"]
        raise UserError(
            f"fairseq-{tool} would refuse this command ({error[0]}); check --set and the arguments "
            f"after --: {shlex.join(argv)}"
        ) from None
    name = getattr(parsed, "criterion", None)
    check = getattr(CRITERION_REGISTRY.get(name), "check_options", None) if tool == "train" else None
    if check is None:
        return
    config_class = CRITERION_DATACLASS_REGISTRY[name]
    config = config_class(**{k: getattr(parsed, k) for k in config_class.__dataclass_fields__ if hasattr(parsed, k)})
    try:
        check(config)
    except ValueError as error:
        why = getattr(error, "message", str(error))
        raise UserError(f"--criterion {name}: {why} (check --set criterion.* and the arguments after --)") from None
