"""The configs as fairseq-hydra-train reads them, and as an installed copy of the package carries them."""

import glob
import os
import subprocess
import sys

from tests.helpers import REPO, fairseq_cli, hydra_tiny_run

GLUE = os.path.join(REPO, "configs", "glue")


def test_fairseq_hydra_train_itself_trains_standard_plus_plus_twice_as_long(tmp_path):
    shown = {}
    for method in ("std", "std++"):
        # fairseq-hydra-train's cli_main in a fork of this interpreter, as fairseq_cli runs fairseq-train
        proc = fairseq_cli(
            "hydra_train",
            [
                "--config-dir",
                GLUE,
                "--config-name",
                "rte",
                f"method={method}",
                "task.data=glue-bin/RTE-bin",
                "checkpoint.restore_file=model.pt",
                "--cfg",
                "job",
            ],
            cwd=str(tmp_path),
        )
        section = proc.stdout.split("\noptimization:\n", 1)[1]
        shown[method] = int(section.split("max_update:", 1)[1].split()[0])
    assert shown == {"std": 3120, "std++": 6240}


def test_an_installed_copy_carries_the_configs_and_runs_from_any_folder(tmp_path):
    """What `pip install .` installs (setup.py's build_py, configs/ copied into rxf_repro/configs), run from /."""
    build = tmp_path / "build"
    proc = subprocess.run(
        [sys.executable, "setup.py", "-q", "build_py", "--build-lib", str(build)],
        cwd=REPO,
        capture_output=True,
        text=True,
    )
    assert proc.returncode == 0, proc.stderr[-2000:]
    shipped = sorted(
        os.path.relpath(p, build / "rxf_repro" / "configs")
        for p in glob.glob(str(build / "rxf_repro" / "configs" / "**" / "*.yaml"), recursive=True)
    )
    source = sorted(
        os.path.relpath(p, os.path.join(REPO, "configs"))
        for p in glob.glob(os.path.join(REPO, "configs", "**", "*.yaml"), recursive=True)
    )
    assert shipped == source and "glue/longer/rte_std++.yaml" in shipped
    assert (build / "rxf_repro" / "data" / "downloads.tsv").exists()
    env = dict(os.environ, PYTHONPATH=str(build))
    script = (
        "import sys; from rxf_repro import configs, runs; print(configs.config_root(), flush=True); "
        "sys.exit(runs.main(['glue', 'RTE', 'r3f', '--dry-run', '--data', 'X', '--checkpoint', 'Y', '--seeds', '1']))"
    )
    proc = subprocess.run([sys.executable, "-c", script], cwd="/", env=env, capture_output=True, text=True)
    assert proc.returncode == 0, proc.stderr[-2000:]
    root, *commands = proc.stdout.splitlines()
    assert root == str(build / "rxf_repro" / "configs"), proc.stderr
    assert "fairseq_cli.train X/RTE-bin" in commands[0] and "--max-update 3120" in commands[0]


def test_fairseq_hydra_train_reads_the_same_configs(toy_data, tmp_path):
    """The configs are real fairseq-hydra-train configs: RTE with R4F, two updates of a tiny RoBERTa."""
    # fairseq-hydra-train's cli_main in a fork of this interpreter, as fairseq_cli runs fairseq-train
    proc = fairseq_cli(
        "hydra_train",
        [
            "--config-dir",
            os.path.join(REPO, "configs", "glue"),
            "--config-name",
            "rte",
            "method=r4f",
            *hydra_tiny_run(toy_data["cls"]),
            "checkpoint.no_save=true",
        ],
        cwd=str(tmp_path),
    )
    output = proc.stdout
    assert "criterion: RXFSentencePredictionR3FCriterion" in output and "RXFSentencePredictionR4FTask" in output
    assert '"train_num_updates": "2"' in output and "train_symm_kl" in output
