"""Which modules each layer imports, in a fresh interpreter: rxf/ needs torch only; rxf.hf needs transformers and never fairseq."""

import os
import subprocess
import sys

from tests.helpers import REPO

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
