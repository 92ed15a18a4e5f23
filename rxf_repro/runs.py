"""The reproduction runs behind ``run_scripts/*.sh``: configs -> fairseq commands -> one record per run.

This composes ``configs/FAMILY/NAME.yaml`` with ``method=METHOD`` as fairseq-hydra-train does (``--sweep``: the
method's grid), runs fairseq-train once per (setting, seed), evaluates the best validation checkpoint and writes one
``record.json`` per run folder, ``SAVE_ROOT/FAMILY/TASK/METHOD/SETTING/seedN``. Running the same command again skips
the runs that have a record and resumes those with a ``checkpoint_last.pt`` (``--force`` re-runs).
"""

import argparse
import re
import sys
import time
from typing import List, Optional, Sequence

from rxf_repro import catalog, cli, slurm, status
from rxf_repro.cli import UserError, non_negative_int, positive_int
from rxf_repro.commands import check_overrides
from rxf_repro.execution import Planned, log
from rxf_repro.families import Runner

SLURM_ONLY = ("partition", "max_parallel", "time_min", "cpus_per_run", "gpus_per_run", "mem_gb", "slurm_set", "wait")


def task_config(text: str) -> str:
    """argparse type of a GLUE task (``SST-2`` or ``sst_2``): its config name (``catalog.glue_config``)."""
    try:
        return catalog.glue_config(text)
    except ValueError as error:
        raise argparse.ArgumentTypeError(str(error)) from None


def seeds(text: str) -> List[int]:
    """``1-10`` or ``1,2,5`` (or both, ``1-3,7``): each seed once, none negative."""
    out: List[int] = []
    for part in text.split(","):
        found = re.fullmatch(r"\s*(\d+)\s*(?:-\s*(\d+)\s*)?", part)
        if not found:
            raise argparse.ArgumentTypeError(f"{text!r}: expected seeds such as 1-10 or 1,3,5")
        first, last = int(found[1]), int(found[2] or found[1])
        if last < first:
            raise argparse.ArgumentTypeError(f"{part!r} is an empty range (write {last}-{first})")
        out.extend(range(first, last + 1))
    repeated = sorted({s for s in out if out.count(s) > 1})
    if repeated:
        raise argparse.ArgumentTypeError(f"{text!r} names seed(s) {', '.join(map(str, repeated))} more than once")
    return out


def add_common(p: argparse.ArgumentParser, family: str, default_seeds: str, data_help: str, model: str) -> None:
    """The options every family shares; ``model``: the pretrained model's folder (roberta.large, ...)."""
    add = p.add_argument
    add("method", choices=catalog.FAMILY_METHODS[family], help="the method: configs/FAMILY/method/METHOD.yaml")
    add("--data", required=True, help=data_help)
    add("--checkpoint", required=True, help=f"the pretrained model to fine-tune (e.g. {model}/model.pt)")
    add("--save-root", default="runs", help="run folders and records go under here (default: runs)")
    add("--seeds", type=seeds, default=default_seeds, help=f"e.g. 1-3 or 1,3 or 1-3,7 (default {default_seeds})")
    add("--sweep", action="store_true", help="every setting of the method's grid (R3F: lambda x noise type)")
    overrides = "Hydra override of the config, e.g. criterion.r3f_lambda=0.5 (repeatable; checked by fairseq's parser)"
    add("--set", action="append", metavar="KEY=VALUE", help=overrides)
    add("--num-gpus", type=positive_int, default=1, help="GPUs per run (fairseq's distributed training)")
    add("--no-fp16", dest="fp16", action="store_false", help="train in fp32 (the configs use fp16)")
    add("--cpu", action="store_true", help="train on the CPU (implies --no-fp16)")
    add("--dry-run", action="store_true", help="print every command and run nothing")
    force = "re-run each asked run afresh, deleting its checkpoints, logs and record (also past a broken checkpoint)"
    add("--force", action="store_true", help=force)
    add("--tiny", action="store_true", help="mark the records as tiny test runs, not paper scale")
    fresh = "start each fairseq command in a new Python, as --dry-run prints it, not in a fork of this one (which "
    fresh += "has fairseq imported: ~4 s less a run, the same results; --num-gpus above 1 always starts afresh)"
    add("--fresh-interpreter", dest="in_process", action="store_false", help=fresh)
    progress = "seconds between refreshes of the progress bar on stderr (updates, rate, ETA, loss; a line per "
    progress += "validation); 0: none (default 30; fairseq's output is in train.log)"
    add("--progress-every", type=float, default=30.0, metavar="SECONDS", help=progress)
    add("--config-dir", metavar="DIR", help="a configs/ folder of your own (default: the one installed)")
    add = p.add_argument_group("launching on Slurm (docs/cluster.md)").add_argument
    launcher = "local: train the runs here, one after another (default); slurm: submit them as one job array "
    launcher += "through submitit, one array task per run (a probing protocol: per protocol), and return"
    add("--launcher", choices=["local", "slurm"], default="local", help=launcher)
    add("--partition", help="the Slurm partition (default: the cluster's)")
    add("--max-parallel", type=positive_int, help=f"array tasks running at once (default {slurm.MAX_PARALLEL})")
    time_min = f"each job's time limit in minutes (default {slurm.TIME_MIN}); a longer run is requeued and resumes"
    add("--time-min", type=positive_int, help=time_min)
    add("--cpus-per-run", type=positive_int, help=f"CPUs per run (default {slurm.CPUS_PER_RUN})")
    add("--gpus-per-run", type=non_negative_int, help="GPUs per run (default: --num-gpus; 0 with --cpu)")
    add("--mem-gb", type=positive_int, help="memory per run (default: the cluster's)")
    sbatch = "any other sbatch option, e.g. account=myproj or qos=high or constraint=volta32gb (repeatable)"
    add("--slurm-set", action="append", type=slurm.slurm_set, metavar="KEY=VALUE", help=sbatch)
    wait = "follow the jobs to their end (requeues included); exit 0 only if every asked run has its record"
    add("--wait", action="store_true", help=wait)
    add("--poll-every", type=float, default=10.0, metavar="SECONDS", help="--wait's poll (default 10)")


def build_parser() -> argparse.ArgumentParser:
    fairseq = "Arguments after -- go to fairseq-train last, so they win (e.g. -- --arch roberta_base)."
    raw = argparse.RawDescriptionHelpFormatter
    parser = argparse.ArgumentParser(prog="rxf-run", description=__doc__, formatter_class=raw, epilog=fairseq)
    sub = parser.add_subparsers(dest="family", required=True)
    glue_data = "the folder of TASK-bin/ folders that preprocess/glue.sh GLUE_DIR ALL OUT writes (OUT)"
    glue = sub.add_parser("glue", help="GLUE (Table 2)")
    tasks = "MNLI QNLI QQP SST-2 RTE MRPC CoLA STS-B, or make demo's WN-POS WN-LEX WN-DEF WN-BSHIFT (or sst_2 ...)"
    glue.add_argument("task", type=task_config, help=tasks)
    add_common(glue, "glue", "1-10", glue_data, "roberta.large")
    xnli = sub.add_parser("xnli", help="XNLI zero-shot (Table 3)")
    add_common(xnli, "xnli", "1-5", "the folder preprocess/xnli.sh writes", "xlmr.large")
    xnli.add_argument("--languages", nargs="+", choices=catalog.XNLI_LANGUAGES, help="test languages (default: all 15)")
    summ = sub.add_parser("summarization", help="BART summarisation (Table 4)")
    add = summ.add_argument
    add("dataset", choices=tuple(catalog.SUMMARIZATION), help="the dataset (configs/summarization/DATASET.yaml)")
    add_common(summ, "summarization", "1", "the folder preprocess/summarization.sh writes", "bart.large")
    add("--encoder-json", required=True, help="GPT-2 BPE encoder.json (to decode the generations)")
    add("--vocab-bpe", required=True, help="GPT-2 BPE vocab.bpe")
    add("--reference", help="reference summaries (default: the decoded targets of --gen-subset)")
    add("--gen-subset", default="test", help="the split fairseq-generate summarises and ROUGE scores (default: test)")
    add("--gen-batch-size", type=positive_int, default=32, help="sentences per batch in fairseq-generate (default 32)")
    backends = "perl: the official ROUGE-1.5.5 (the paper's numbers); python: Google's rouge-score (no Perl needed; "
    backends += "close to, not equal to, perl)"
    add("--rouge-backend", choices=["perl", "python"], default="perl", help=backends)
    states = "the state of every run folder under SAVE_ROOT: done, running, queued, failed or interrupted"
    state = sub.add_parser("status", help=states, description=status.__doc__, formatter_class=raw)
    state.add_argument("save_root", metavar="SAVE_ROOT", help="the --save-root of the runs")
    probe = sub.add_parser("probe", help="representational-collapse probing (Figures 3-5)")
    add = probe.add_argument
    add("protocol", choices=catalog.PROTOCOLS, help="Section 4: Figures 3, 4 and 5 (rxf_repro/protocols.py)")
    add_common(probe, "probe", "1-3", glue_data, "roberta.large")
    add("--cycles", type=positive_int, default=3, help="retention: cycles of the chain (default 3)")
    source = "generalisation: the task fine-tuned before the probes (default the paper's SST-2; make demo: WN-POS)"
    add("--source-task", type=task_config, default="SST-2", help=source)
    fit = "trained by fairseq-train, as the paper's (default), or cached: the frozen encoder's features computed "
    fit += "once and the layer fit by L-BFGS (python -m rxf_repro.probe_features)"
    add("--probe-fit", choices=["trained", "cached"], default="trained", help=fit)
    add("--probe-tasks", nargs="+", type=task_config, help="generalisation: tasks to probe (default the paper's six)")
    chain = "degradation/retention: the task chain, source first (default the paper's SST-2 QNLI QQP RTE)"
    add("--chain", nargs="+", type=task_config, help=chain)
    probe_set = "Hydra override for the probes only (--set applies to both, but for the method's criterion.* keys)"
    add("--probe-set", action="append", metavar="KEY=VALUE", help=probe_set)
    return parser


def main(argv: Optional[Sequence[str]] = None, only: Optional[str] = None) -> int:
    """rxf-run. ``only`` (a unit's folder): run that unit here and nothing else, whatever ``--launcher`` says (what a
    Slurm array task does, ``rxf_repro/slurm.py``)."""
    given = list(sys.argv[1:] if argv is None else argv)
    own, extra = (given[: given.index("--")], given[given.index("--") + 1 :]) if "--" in given else (given, [])
    parser = build_parser()
    args = parser.parse_args(own)
    if args.family == "status":
        return cli.tool_main("rxf-run", lambda: status.main(args.save_root))
    args.fairseq_args = extra
    args.fp16 = args.fp16 and not args.cpu
    given_slurm = [o for o in SLURM_ONLY if getattr(args, o) not in (None, False, [])]
    if args.launcher == "local" and only is None and given_slurm:
        parser.error(f"--{given_slurm[0].replace('_', '-')} is for --launcher slurm")
    interrupted = "interrupted; running the same command again resumes from each run's checkpoint_last.pt"
    return cli.tool_main("rxf-run", lambda: run(args, given, only), interrupted=interrupted)


def run(args: argparse.Namespace, given: List[str], only: Optional[str]) -> int:
    slurm_plan: Optional[List[Planned]] = [] if args.launcher == "slurm" and only is None else None
    runner = Runner(args, plan=slurm_plan, only=only)
    started = time.time()
    check_overrides(args.set or [], "--set")
    check_overrides(getattr(args, "probe_set", None) or [], "--probe-set")
    getattr(runner, f"run_{args.family}")()
    if slurm_plan is not None:
        return slurm.submit(args, given, slurm_plan)
    if only is not None and not runner.executor.only_seen:
        raise UserError(f"{only}: not among the runs these arguments give (were configs/ changed since submitting?)")
    if not args.dry_run:
        log(runner.executor.summary(started, args.save_root))
    return 0


if __name__ == "__main__":
    sys.exit(main())
