"""Which modules each layer imports: one way, rxf <- rxf_fairseq <- rxf_repro (read from the sources); and, in a fresh
interpreter, rxf/ needs torch only, rxf.hf needs transformers and never fairseq."""

import ast
import os
import pathlib
import subprocess
import sys

from tests.helpers import REPO

LAYERS = ("rxf", "rxf_fairseq", "rxf_repro")  # each may import the layers before it, never those after


def imported_modules(path: pathlib.Path):
    """(line, module) of every absolute import in the file, those inside functions included, and of every
    ``importlib.import_module("...")`` of a constant name. Relative imports cannot leave their package."""
    for node in ast.walk(ast.parse(path.read_text(encoding="utf-8"), str(path))):
        if isinstance(node, ast.Import):
            yield from ((node.lineno, alias.name) for alias in node.names)
        elif isinstance(node, ast.ImportFrom) and node.level == 0:
            yield node.lineno, node.module
        elif isinstance(node, ast.Call) and getattr(node.func, "attr", getattr(node.func, "id", "")) == "import_module":
            if node.args and isinstance(node.args[0], ast.Constant) and isinstance(node.args[0].value, str):
                yield node.lineno, node.args[0].value


def layer_violations(root) -> list:
    """``FILE:LINE: LAYER imports MODULE`` for every import of a later layer by an earlier one under ``root``."""
    found = []
    for rank, layer in enumerate(LAYERS):
        for path in sorted(pathlib.Path(root, layer).rglob("*.py")):
            for line, module in imported_modules(path):
                top = module.split(".")[0]
                if top in LAYERS[rank + 1 :]:
                    found.append(f"{path.relative_to(root)}:{line}: {layer} imports {module}")
    return found


def test_layers_import_one_way():
    """rxf may import neither rxf_fairseq nor rxf_repro, rxf_fairseq may not import rxf_repro: every .py file of the
    three packages, read with ``ast`` (no import runs)."""
    assert layer_violations(REPO) == []


def test_the_layer_check_sees_an_import_inside_a_function(tmp_path):
    """The check reads imports anywhere in a file: in a function body, and importlib's. (Before 4bedba4 it would have
    failed on rxf_fairseq/hf_import.py, which imported rxf_repro at its top.)"""
    for layer in LAYERS:
        (tmp_path / layer).mkdir()
    (tmp_path / "rxf_fairseq" / "tool.py").write_text("import os\n\n\ndef main():\n    from rxf_repro import outputs\n")
    (tmp_path / "rxf" / "kl.py").write_text("import importlib\n\nimportlib.import_module('rxf_fairseq.tasks')\n")
    (tmp_path / "rxf_repro" / "runs.py").write_text("import rxf\nfrom rxf_fairseq import checkpoint_compat\n")
    assert layer_violations(tmp_path) == [
        "rxf/kl.py:3: rxf imports rxf_fairseq.tasks",
        "rxf_fairseq/tool.py:5: rxf_fairseq imports rxf_repro",
    ]


IMPORT_EVERY_MODULE = """
import importlib, pkgutil, sys
import torch
before = set(sys.modules)
import rxf
names = sorted("rxf." + info.name for info in pkgutil.iter_modules(rxf.__path__) if info.name != "hf")
for name in names:
    importlib.import_module(name)
new = set(sys.modules) - before
print(" ".join(names))
print(" ".join(sorted(m for m in new if m.split(".")[0] not in ("rxf", *sys.stdlib_module_names))))
print("fairseq" in sys.modules)
"""


def test_every_rxf_module_imports_torch_only():
    """In a fresh interpreter: importing every module of rxf/ adds rxf's own modules and the standard
    library's to what torch loads, nothing else, and fairseq least of all."""
    proc = subprocess.run([sys.executable, "-c", IMPORT_EVERY_MODULE], cwd=REPO, capture_output=True, text=True)
    assert proc.returncode == 0, proc.stderr[-3000:]
    names, foreign, fairseq_loaded = (proc.stdout.splitlines() + ["", "", ""])[:3]
    files = sorted(
        f"rxf.{f[:-3]}"
        for f in os.listdir(os.path.join(REPO, "rxf"))
        if f.endswith(".py") and f not in ("__init__.py", "hf.py")
    )
    assert names.split() == files
    assert foreign == "", f"rxf imports more than torch: {foreign}"
    assert fairseq_loaded == "False"


def test_rxf_hf_alone_imports_transformers_and_never_fairseq():
    """rxf.hf (the Trainer integration) is the one module of rxf/ that imports transformers."""
    code = "import sys, rxf.hf; print('transformers' in sys.modules, 'fairseq' in sys.modules)"
    proc = subprocess.run([sys.executable, "-c", code], cwd=REPO, capture_output=True, text=True)
    assert proc.returncode == 0, proc.stderr[-3000:]
    assert proc.stdout.split() == ["True", "False"]


IMPORT_THE_PLUGIN = """
import importlib, pkgutil, sys
import rxf_fairseq
from fairseq import checkpoint_utils, criterions, models, tasks

def registered():
    return [sorted(r) for r in (criterions.CRITERION_REGISTRY, tasks.TASK_REGISTRY, models.ARCH_MODEL_REGISTRY)]

after_import = registered()
print("rxf.hf" in sys.modules, "transformers" in sys.modules)
for package in ("criterions", "tasks", "models"):
    path = importlib.import_module("rxf_fairseq." + package).__path__
    for info in pkgutil.iter_modules(path):
        importlib.import_module(f"rxf_fairseq.{package}.{info.name}")
print(registered() == after_import, "sentence_prediction_r4f" in after_import[1])
print(float(checkpoint_utils.load_checkpoint_to_cpu(sys.argv[1])["extra_state"]["val_loss"]))
"""


def test_import_rxf_fairseq_alone_registers_every_component_and_loads_released_checkpoints(tmp_path):
    """What --user-dir rxf_fairseq gives a fresh fairseq process, with nothing the tests import beside it (the tests'
    forked runs inherit their process's modules): every criterion, task and architecture of the plugin registered
    (importing each of their modules afterwards adds none), neither rxf.hf nor transformers loaded, and a checkpoint
    in the released layout (numpy scalars) loaded through the allow-list."""
    from tests.unit.test_checkpoint_compat import released_layout_checkpoint

    released_layout_checkpoint(str(tmp_path / "released.pt"))
    command = [sys.executable, "-c", IMPORT_THE_PLUGIN, str(tmp_path / "released.pt")]
    proc = subprocess.run(command, cwd=REPO, capture_output=True, text=True)
    assert proc.returncode == 0, proc.stderr[-3000:]
    assert proc.stdout.split() == ["False", "False", "True", "True", "1.5"]
