"""What Slurm costs a run: ``rxf-run --launcher slurm`` against the local launcher, on tiny runs of the toy data.

    export $(tests/slurm/local_slurm.sh up)       # or any Slurm where this machine's files are shared
    python benchmarks/cluster.py --out benchmarks/results/cluster.json

Measured, each as the wall time of the ``rxf-run`` command (a fresh interpreter, as a user types it):

1. **local**: ``--runs`` tiny RTE runs (``--updates`` updates of a 2-layer RoBERTa on the CPU), one after another;
2. **slurm, one at a time**: the same runs with ``--launcher slurm --max-parallel 1 --wait``: the time to submit,
   the whole wall time, and the overhead per run against (1) (a job's start, its interpreter importing fairseq,
   the scheduler's interval, ``--wait``'s polling);
3. **requeue**: one longer run (``--requeue-updates``) on Slurm, uninterrupted, then again with ``scontrol requeue``
   right after its first saved checkpoint: the extra wall time the requeue cost, and the record's attempts.

Runs use one CPU each (``--cpus-per-run 1``) and one thread. The toy data and its tiny pretrained RoBERTa are built
under ``--work`` first (the test suite's ``toy_data``), the runs in a new folder there each time.
"""

import argparse
import json
import os
import re
import subprocess
import sys
import tempfile
import time
from pathlib import Path

from rxf_repro import status

REPO = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))
RXF_RUN = os.path.join(os.path.dirname(sys.executable), "rxf-run")


def tiny_argv(data: Path, checkpoint: Path, save_root: Path, updates: int, seeds: str) -> list:
    sys.path.insert(0, REPO)
    from tests.helpers import rxf_run_argv

    return rxf_run_argv(data, checkpoint, save_root, updates=updates, seeds=seeds)


def with_options(argv: list, *options: str) -> list:
    """``options`` before the ``--`` that starts fairseq's flags."""
    at = argv.index("--")
    return argv[:at] + list(options) + argv[at:]


def timed(argv: list) -> tuple:
    started = time.time()
    proc = subprocess.run([RXF_RUN, *argv], capture_output=True, text=True)
    wall = time.time() - started
    if proc.returncode != 0:
        sys.exit(f"cluster.py: rxf-run {' '.join(argv[:3])} failed (exit {proc.returncode}):\n{proc.stderr[-3000:]}")
    return wall, proc.stdout + proc.stderr


def submitted_in(output: str) -> float:
    found = re.search(r"submitted \d+ unit\(s\) as Slurm job array \d+ \(\d+ at a time\) in ([0-9.]+) s", output)
    return float(found.group(1)) if found else float("nan")


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--runs", type=int, default=4)
    parser.add_argument("--updates", type=int, default=30)
    parser.add_argument("--requeue-updates", type=int, default=90)
    parser.add_argument("--work", help="where the toy data and the runs go (default: a temporary folder)")
    parser.add_argument("--out", help="write the results here as JSON")
    args = parser.parse_args()
    if subprocess.run(["sinfo", "-h"], capture_output=True).returncode != 0:
        sys.exit("cluster.py: no Slurm answers here (sinfo failed): export $(tests/slurm/local_slurm.sh up) first")
    os.environ.setdefault("OMP_NUM_THREADS", "1")
    work = Path(args.work or tempfile.mkdtemp(prefix="rxf-cluster-bench-"))
    sys.path.insert(0, REPO)
    import shutil

    from tests.helpers import build_toy_data

    if not (work / "pretrained" / "checkpoint_last.pt").exists():
        build_toy_data(work)
    data = work / "glue-bin"
    if not data.exists():
        shutil.copytree(work / "cls", data / "RTE-bin")
    checkpoint = work / "pretrained" / "checkpoint_last.pt"
    runs = Path(tempfile.mkdtemp(dir=work, prefix="runs-"))  # every measurement trains afresh
    slurm = ["--launcher", "slurm", "--cpus-per-run", "1", "--time-min", "30", "--poll-every", "1", "--wait"]
    seeds = f"1-{args.runs}"

    local_wall, _ = timed(tiny_argv(data, checkpoint, runs / "local", args.updates, seeds))
    argv = with_options(tiny_argv(data, checkpoint, runs / "slurm", args.updates, seeds), *slurm, "--max-parallel", "1")
    slurm_wall, output = timed(argv)

    uninterrupted_wall, _ = timed(
        with_options(tiny_argv(data, checkpoint, runs / "uninterrupted", args.requeue_updates, "1"), *slurm)
    )
    requeued = runs / "requeued"
    argv = tiny_argv(data, checkpoint, requeued, args.requeue_updates, "1")
    started = time.time()
    subprocess.run([RXF_RUN, *with_options(argv, *slurm[:-1])], check=True, capture_output=True)
    run = next(requeued.glob("glue/rte/r3f/*/seed1"))
    while not ((run / "train.log").exists() and "Saved checkpoint" in (run / "train.log").read_text()):
        time.sleep(0.1)
    subprocess.run(["scontrol", "requeue", status.job_of(str(run))], check=True)
    timed(with_options(argv, *slurm))
    requeued_wall = time.time() - started
    record = json.loads((run / "record.json").read_text())

    results = {
        "date": time.strftime("%Y-%m-%d"),
        "machine": f"{os.cpu_count()} CPUs, {subprocess.run(['sinfo', '-V'], capture_output=True, text=True).stdout.strip()}",
        "runs": args.runs,
        "updates": args.updates,
        "local_wall_s": round(local_wall, 1),
        "slurm_one_at_a_time_wall_s": round(slurm_wall, 1),
        "submit_s": submitted_in(output),
        "overhead_per_run_s": round((slurm_wall - local_wall) / args.runs, 1),
        "requeue_updates": args.requeue_updates,
        "uninterrupted_slurm_wall_s": round(uninterrupted_wall, 1),
        "requeued_slurm_wall_s": round(requeued_wall, 1),
        "requeue_cost_s": round(requeued_wall - uninterrupted_wall, 1),
        "requeued_attempts": [(a["attempt"], a["resumed"], a["wall_time_s"]) for a in record["attempts"]],
    }
    print(json.dumps(results, indent=1))
    if args.out:
        with open(args.out, "w", encoding="utf-8") as f:
            json.dump(results, f, indent=1)
            f.write("\n")
    return 0


if __name__ == "__main__":
    sys.exit(main())
