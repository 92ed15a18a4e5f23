import logging
import os
import shutil
import signal
from pathlib import Path

# One thread per test process, set before torch loads its OpenMP runtime: `make test` runs two pytest-xdist workers on
# two cores (more threads only contend), and a process that never started OpenMP threads forks safely (the tests run
# fairseq in forks of themselves, as rxf-run does). Children inherit it.
os.environ.setdefault("OMP_NUM_THREADS", "1")

import pytest  # noqa: E402

import rxf_fairseq  # noqa: F401  registers our components before fairseq parses any --user-dir
from tests.helpers import MINILM, benchmark_module, build_toy_data, built_once, import_hf


@pytest.fixture(autouse=True)
def _process_state_restored():
    """What a tool's ``main`` run in this process changes for the process, put back after every test: the SIGTERM and
    SIGINT handlers (``process.exit_on_sigterm``) and the root logger's handlers and level (fairseq's and the tools'
    logging set-up). A test then sees the worker as it started, whichever tests ran before it on that worker, and so
    do the runs it forks."""
    handlers = {sig: signal.getsignal(sig) for sig in (signal.SIGTERM, signal.SIGINT)}
    root = logging.getLogger()
    root_handlers, root_level = list(root.handlers), root.level
    yield
    for sig, handler in handlers.items():
        signal.signal(sig, handler)
    root.handlers[:], root.level = root_handlers, root_level


@pytest.fixture(scope="session")
def toy_data(tmp_path_factory):
    """Binarized toy classification (``cls``), seq2seq (``s2s``) and masked-LM (``lm``) data, and the tiny
    pretrained RoBERTa of ``pretrained_roberta``."""
    root = built_once(tmp_path_factory, "toy", build_toy_data)
    return {name: str(root / name) for name in ("cls", "s2s", "lm")} | {"root": str(root)}


@pytest.fixture
def glue_bin(toy_data, tmp_path):
    """rxf-run's --data for RTE: the toy classification data as ``glue-bin/RTE-bin``."""
    shutil.copytree(toy_data["cls"], tmp_path / "glue-bin" / "RTE-bin")
    return tmp_path / "glue-bin"


@pytest.fixture(scope="session")
def pretrained_roberta(toy_data):
    """A tiny RoBERTa pretrained with fairseq's masked_lm: an official-format checkpoint."""
    return os.path.join(toy_data["root"], "pretrained", "checkpoint_last.pt")


@pytest.fixture(scope="session")
def tiny_bpe(tmp_path_factory):
    """A real GPT-2-format BPE (every byte symbol plus a few merges) and a RoBERTa/BART-style dict.txt, as the
    preprocess benchmark makes it."""
    return benchmark_module("preprocess").write_tiny_bpe(tmp_path_factory.mktemp("bpe"))


@pytest.fixture
def read_only_folder(tmp_path):
    """A folder nobody may write in, root included: a read-only tmpfs when we are root (root ignores file
    modes), else a folder without write permission."""
    import subprocess

    folder = tmp_path / "read-only"
    folder.mkdir()
    if os.geteuid() != 0:
        folder.chmod(0o555)
        yield folder
        folder.chmod(0o755)
        return
    mounted = subprocess.run(
        ["mount", "-t", "tmpfs", "-o", "ro,size=1m", "tmpfs", str(folder)], capture_output=True, text=True
    )
    if mounted.returncode != 0:
        pytest.skip(f"cannot make a read-only folder as root here: {mounted.stderr.strip()}")
    yield folder
    subprocess.run(["umount", str(folder)], check=False)


def _import_minilm(root: Path) -> None:
    proc = import_hf(MINILM, root / "minilm")
    assert proc.returncode == 0, proc.stdout[-3000:]


@pytest.fixture(scope="session")
def minilm(tmp_path_factory):
    """all-MiniLM-L6-v2 from its PyPI package, imported with rxf-import-hf."""
    return built_once(tmp_path_factory, "minilm", _import_minilm) / "minilm"
