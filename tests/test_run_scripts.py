"""run_scripts/ and configs/: the paper's values, the commands they make, and one tiny run per path."""

import contextlib
import io
import os
import shlex
import shutil
import subprocess
import tempfile

import pytest

from rxf_repro import catalog, runs
from tests.helpers import REPO, TINY_BART, TINY_ROBERTA, fairseq_cli, forked

pytestmark = pytest.mark.slow  # fairseq or a pipeline in subprocesses: make test-fast skips it

RUN_SCRIPTS = os.path.join(REPO, "run_scripts")

# The paper, typed in from Appendix A.2 (Tables 5-9), independently of configs/.
TABLE5 = {  # task: (lr, max updates, max sentences)
    "MNLI": (5e-6, 123873, 8),
    "QNLI": (5e-6, 33112, 8),
    "QQP": (5e-6, 113272, 32),
    "SST-2": (5e-6, 20935, 32),
    "RTE": (1e-5, 3120, 8),
    "MRPC": (1e-5, 2296, 16),
    "CoLA": (1e-5, 5336, 16),
}
TABLE7 = {"cnn_dm": (1024, 80000, 1000), "gigaword": (2048, 200000, 5000), "reddit_tifu": (2048, 200000, 5000)}
GLUE_LAMBDAS, SUMM_LAMBDAS, XNLI_LAMBDAS = {0.1, 0.5, 1.0, 5.0}, {0.001, 0.01, 0.1}, {0.5, 1.0, 3.0, 5.0}
NOISE_TYPES = {"uniform", "normal"}


def with_dry_run(args):
    args = list(args)
    if "--dry-run" in args:
        return args
    return args[: args.index("--")] + ["--dry-run"] + args[args.index("--") :] if "--" in args else args + ["--dry-run"]


def wrapper_argv(script, *args, env=None):
    """``bash run_scripts/SCRIPT ARGS`` with a recorder of its arguments in place of ``$PYTHON``: (the finished
    process, the argv it handed that Python, or None if it started none). The script's own work (environment,
    seeds, ``--``, usage) without starting rxf-run; each script's one real run is
    test_glue_classification_and_regression_end_to_end (glue.sh), test_xnli_zero_shot_end_to_end (xnli.sh),
    test_summarization_train_generate_score_end_to_end (summarization.sh) and test_probing's
    test_the_three_protocols_end_to_end (probe.sh)."""
    with tempfile.TemporaryDirectory(prefix="rxf-wrapper-") as folder:
        recorder = os.path.join(folder, "python")
        with open(recorder, "w") as f:
            f.write('#!/bin/sh\nprintf \'%s\\0\' "$@" > "$(dirname "$0")/argv"\n')
        os.chmod(recorder, 0o755)
        proc = subprocess.run(
            ["bash", os.path.join(RUN_SCRIPTS, script), *args],
            env=dict(os.environ, **(env or {}), PYTHON=recorder),
            capture_output=True,
            text=True,
        )
        recorded = os.path.join(folder, "argv")
        argv = open(recorded).read().split("\0")[:-1] if os.path.exists(recorded) else None
    return proc, argv


def rxf_run_argv(script, *args, env=None):
    """rxf-run's argv (after ``-m rxf_repro.runs``) as ``run_scripts/SCRIPT ARGS`` makes it."""
    proc, argv = wrapper_argv(script, *args, env=env)
    assert proc.returncode == 0 and argv is not None, proc.stderr[-3000:]
    assert argv[:2] == ["-m", "rxf_repro.runs"], argv
    return argv[2:]


def dry_run(script, *args, env=None):
    """The commands ``run_scripts/SCRIPT ARGS --dry-run`` prints: the script's argv for rxf-run, run in this
    process."""
    return rxf_run_dry(*rxf_run_argv(script, *with_dry_run(args), env=env))


def rxf_run_dry(*args):
    """The same, in this process (``rxf-run`` as the scripts call it; fairseq is imported once)."""
    out = io.StringIO()
    with contextlib.redirect_stdout(out), contextlib.redirect_stderr(io.StringIO()):
        assert runs.main(with_dry_run(args)) == 0
    return [shlex.split(line) for line in out.getvalue().splitlines() if line.strip()]


def glue_dry(task, method, *args):
    return rxf_run_dry("glue", task, method, "--data", "/data/glue-bin", "--checkpoint", GLUE_ENV["ROBERTA"], *args)


def summ_dry(dataset, method, *args):
    return rxf_run_dry(
        "summarization",
        dataset,
        method,
        "--data",
        "/d",
        "--checkpoint",
        "/b/model.pt",
        "--encoder-json",
        "/bpe/encoder.json",
        "--vocab-bpe",
        "/bpe/vocab.bpe",
        *args,
    )


def flag(argv, name):
    """The value(s) after the last ``name`` (fairseq's argparse: the last one wins)."""
    positions = [i for i, a in enumerate(argv) if a == name]
    assert positions, f"{name} missing from {argv}"
    return argv[positions[-1] + 1]


GLUE_ENV = {"GLUE_BIN": "/data/glue-bin", "ROBERTA": "/ckpt/roberta.large/model.pt"}


@pytest.mark.parametrize("task", sorted(TABLE5))
def test_glue_dry_run_has_the_papers_values(task):
    lr, updates, batch = TABLE5[task]
    (train,) = glue_dry(task, "r3f", "--seeds", "3")
    assert train[1:3] == ["-m", "fairseq_cli.train"] and train[3] == f"/data/glue-bin/{task}-bin"
    assert float(flag(train, "--lr")) == lr and int(flag(train, "--max-update")) == updates
    assert int(flag(train, "--total-num-update")) == updates and int(flag(train, "--batch-size")) == batch
    assert int(flag(train, "--warmup-updates")) == round(0.06 * updates)  # Table 6: 6% warmup
    assert flag(train, "--adam-betas") == "(0.9,0.98)" and float(flag(train, "--adam-eps")) == 1e-6
    assert float(flag(train, "--weight-decay")) == 0.01 and float(flag(train, "--dropout")) == 0.1
    assert flag(train, "--lr-scheduler") == "polynomial_decay" and flag(train, "--optimizer") == "adam"
    assert float(flag(train, "--eps")) == 1e-5 and flag(train, "--criterion") == "sentence_prediction_r3f"
    assert flag(train, "--restore-file") == GLUE_ENV["ROBERTA"] and flag(train, "--arch") == "roberta_large"
    assert "--fp16" in train and flag(train, "--seed") == "3"
    if task == "MNLI":
        assert flag(train, "--valid-subset") == "valid,valid1" and flag(train, "--num-classes") == "3"


def test_glue_sweep_covers_the_grid_for_every_seed():
    commands = dry_run("glue.sh", "RTE", "r4f", "1", "2", "--sweep", env=GLUE_ENV)
    assert len(commands) == 2 * len(GLUE_LAMBDAS) * len(NOISE_TYPES)
    settings = {(float(flag(c, "--r3f-lambda")), flag(c, "--noise-type"), flag(c, "--seed")) for c in commands}
    assert settings == {(lam, noise, seed) for lam in GLUE_LAMBDAS for noise in NOISE_TYPES for seed in ("1", "2")}
    assert {flag(c, "--task") for c in commands} == {"sentence_prediction_r4f"}
    assert len({flag(c, "--save-dir") for c in commands}) == len(commands)  # one folder per run


def test_glue_methods_and_std_plus_plus_trains_twice_as_long():
    std = glue_dry("CoLA", "std", "--seeds", "1")[0]
    longer = glue_dry("CoLA", "std++", "--seeds", "1")[0]
    smart = glue_dry("CoLA", "smart", "--seeds", "1")[0]
    assert flag(std, "--criterion") == flag(longer, "--criterion") == "sentence_prediction"
    assert "--r3f-lambda" not in std and flag(smart, "--criterion") == "sentence_prediction_smart"
    assert int(flag(longer, "--max-update")) == 2 * int(flag(std, "--max-update")) == 2 * 5336
    assert int(flag(longer, "--warmup-updates")) == 2 * round(0.06 * 5336)
    assert flag(std, "--best-checkpoint-metric") == "mcc" and "--report-mcc" in std
    defaults = dry_run("glue.sh", "CoLA", "std", env=GLUE_ENV)
    assert [flag(c, "--seed") for c in defaults] == [str(s) for s in range(1, 11)]  # 10 seeds


def test_glue_environment_multi_gpu_and_overrides():
    (train,) = dry_run(
        "glue.sh",
        "SST-2",
        "r3f",
        "1",
        "--set",
        "criterion.r3f_lambda=0.5",
        "--",
        "--update-freq",
        "2",
        env=dict(GLUE_ENV, NUM_GPUS="8", FP16="0", SAVE_ROOT="/tmp/somewhere"),
    )
    assert flag(train, "--distributed-world-size") == "8" and "--fp16" not in train
    assert float(flag(train, "--r3f-lambda")) == 0.5 and train[-2:] == ["--update-freq", "2"]
    assert flag(train, "--save-dir") == "/tmp/somewhere/glue/sst_2/r3f/noise_type=uniform,r3f_lambda=0.5/seed1"
    (lower,) = dry_run("glue.sh", "sst_2", "std", "1", env=GLUE_ENV)  # the config name works as the task too
    assert lower[3] == "/data/glue-bin/SST-2-bin"


def test_an_interrupted_run_continues_from_its_last_checkpoint(tmp_path):
    (first,) = glue_dry("RTE", "r3f", "--seeds", "1", "--save-root", str(tmp_path))
    run_dir = flag(first, "--save-dir")
    os.makedirs(run_dir)
    open(os.path.join(run_dir, "checkpoint_last.pt"), "w").close()
    (again,) = glue_dry("RTE", "r3f", "--seeds", "1", "--save-root", str(tmp_path))
    assert flag(again, "--restore-file") == os.path.join(run_dir, "checkpoint_last.pt")
    assert not {"--reset-optimizer", "--reset-dataloader", "--reset-meters"} & set(again)


def rxf_run_error(*args):
    err = io.StringIO()
    with contextlib.redirect_stdout(io.StringIO()), contextlib.redirect_stderr(err):
        try:
            code = runs.main(list(args))
        except SystemExit as exit_:  # argparse
            code = exit_.code
    return code, err.getvalue()


def test_bad_overrides_and_missing_inputs_fail_before_anything_runs(tmp_path):
    base = ["glue", "RTE", "r3f", "--data", "/data/glue-bin", "--checkpoint", "/m.pt", "--seeds", "1", "--dry-run"]
    for args, message in (
        (["--set", "criterion.r3f_lamda=0.5"], "unrecognized arguments: --r3f-lamda 0.5"),
        (["--set", "optimization.max_update=abc"], "--max-update: invalid int value: 'abc'"),
        (["--set", "foo=1"], "'foo' is not SECTION.KEY"),
        (["--set", "max_update"], "expected KEY=VALUE"),
        (["--", "--no-such-flag"], "unrecognized arguments: --no-such-flag"),
    ):
        code, err = rxf_run_error(*base, *args)
        assert code == 1 and message in err, err
    # a real run checks its data and checkpoint first, naming the flag
    code, err = rxf_run_error(*[a for a in base if a != "--dry-run"][:-2], "--seeds", "1", "--save-root", str(tmp_path))
    assert code == 1 and "--data /data/glue-bin/RTE-bin: no input0/dict.txt there" in err, err
    (tmp_path / "glue" / "RTE-bin" / "input0").mkdir(parents=True)
    (tmp_path / "glue" / "RTE-bin" / "input0" / "dict.txt").write_text("a 1\n")
    code, err = rxf_run_error(
        "glue",
        "rte",
        "r3f",
        "--data",
        str(tmp_path / "glue"),
        "--checkpoint",
        "/no/model.pt",
        "--save-root",
        str(tmp_path / "runs"),
    )
    assert code == 1 and "--checkpoint /no/model.pt: no such file" in err, err
    assert not (tmp_path / "runs").exists()


def test_missing_paths_and_bad_names_are_refused():
    proc, argv = wrapper_argv("glue.sh", "RTE", "r3f", "--dry-run", env={k: "" for k in GLUE_ENV})
    assert proc.returncode == 2 and "GLUE_BIN" in proc.stderr and argv is None
    for args, message in ((("XYZ", "r3f"), "unknown task 'XYZ'"), (("RTE", "r5f"), "invalid choice: 'r5f'")):
        code, err = rxf_run_error(*rxf_run_argv("glue.sh", *args, "--dry-run", env=GLUE_ENV))
        assert code not in (0, None) and message in err, err


@pytest.mark.parametrize("dataset", sorted(TABLE7))
def test_summarization_dry_run_has_the_papers_values(dataset):
    tokens, updates, warmup = TABLE7[dataset]
    train, generate, score = summ_dry(dataset, "r3f")
    assert int(flag(train, "--max-tokens")) == tokens and int(flag(train, "--max-update")) == updates
    assert int(flag(train, "--warmup-updates")) == warmup and float(flag(train, "--lr")) == 3e-5
    assert float(flag(train, "--clip-norm")) == 0.1 and float(flag(train, "--adam-eps")) == 1e-8
    assert flag(train, "--adam-betas") == "(0.9,0.98)" and float(flag(train, "--weight-decay")) == 0.01
    assert flag(train, "--criterion") == "label_smoothed_cross_entropy_r3f" and flag(train, "--arch") == "bart_large"
    assert float(flag(train, "--dropout")) == 0.1 and float(flag(train, "--eps")) == 1e-5
    assert flag(train, "--lr-scheduler") == "polynomial_decay"
    commands = summ_dry(dataset, "r3f", "--sweep")
    lambdas = {
        (float(flag(c, "--r3f-lambda")), flag(c, "--noise-type")) for c in commands if c[2] == "fairseq_cli.train"
    }
    assert lambdas == {(lam, noise) for lam in SUMM_LAMBDAS for noise in NOISE_TYPES}
    assert generate[2] == "fairseq_cli.generate" and flag(generate, "--no-repeat-ngram-size") == "3"
    if dataset == "cnn_dm":  # BART's published CNN/DM decoding
        assert (
            flag(generate, "--beam"),
            flag(generate, "--lenpen"),
            flag(generate, "--max-len-b"),
            flag(generate, "--min-len"),
        ) == ("4", "2.0", "140", "55")
    # files2rouge's order: references first, then the system's summaries
    assert score[0] == "rxf-rouge" and score[1].endswith("test.ref") and score[2].endswith("test.hypo")


def test_xnli_dry_run_has_the_papers_values():
    commands = rxf_run_dry("xnli", "r4f", "--data", "/x", "--checkpoint", "/m.pt", "--sweep")
    trains = [c for c in commands if c[2] == "fairseq_cli.train"]
    assert len(trains) == 5 * len(XNLI_LAMBDAS) * len(NOISE_TYPES)  # 5 runs per setting
    assert {(float(flag(c, "--r3f-lambda")), flag(c, "--noise-type")) for c in trains} == {
        (lam, noise) for lam in XNLI_LAMBDAS for noise in NOISE_TYPES
    }
    train, validate = commands[0], commands[1]
    assert float(flag(train, "--lr")) == 3e-5 and int(flag(train, "--max-update")) == 450000
    assert int(flag(train, "--max-tokens")) == 4400 and int(flag(train, "--batch-size")) == 8
    assert int(flag(train, "--max-positions")) == 512 and float(flag(train, "--adam-eps")) == 1e-8
    assert float(flag(train, "--dropout")) == 0.1 and float(flag(train, "--weight-decay")) == 0.01
    assert flag(train, "--adam-betas") == "(0.9,0.98)" and flag(train, "--lr-scheduler") == "polynomial_decay"
    assert float(flag(train, "--eps")) == 1e-5 and flag(train, "--arch") == "roberta_large"
    assert flag(train, "--task") == "sentence_prediction_r4f" and flag(train, "--optimizer") == "adam"
    assert flag(validate, "--valid-subset").split(",") == [f"test_{lang}" for lang in catalog.XNLI_LANGUAGES]


def test_every_generated_command_parses_with_fairseqs_own_parser():
    from fairseq import options

    for task in catalog.GLUE_TASKS:
        for method in catalog.FAMILY_METHODS["glue"]:
            (train,) = glue_dry(task, method, "--seeds", "1")
            args = options.parse_args_and_arch(options.get_training_parser(), train[3:])
            assert args.lr == [float(flag(train, "--lr"))]
    for dataset in catalog.SUMMARIZATION:
        train, generate, _ = summ_dry(dataset, "r3f")
        assert options.parse_args_and_arch(options.get_training_parser(), train[3:]).share_all_embeddings
        assert options.parse_args_and_arch(options.get_generation_parser(), generate[3:]).beam >= 4


def test_fairseq_hydra_train_reads_the_same_configs(toy_data, tmp_path):
    """The configs are real fairseq-hydra-train configs: RTE with R4F, two updates of a tiny RoBERTa."""
    tiny = [
        "model._name=roberta_base",
        "+model.encoder_layers=2",
        "+model.encoder_embed_dim=32",
        "+model.encoder_ffn_embed_dim=64",
        "+model.encoder_attention_heads=2",
        "+model.max_positions=64",
        "task.max_positions=64",
    ]
    # fairseq-hydra-train's cli_main in a fork of this interpreter, as fairseq_cli runs fairseq-train
    proc = fairseq_cli(
        "hydra_train",
        [
            "--config-dir",
            os.path.join(REPO, "configs", "glue"),
            "--config-name",
            "rte",
            "method=r4f",
            f"task.data={toy_data['cls']}",
            "checkpoint.restore_file=none",
            "common.cpu=true",
            "common.fp16=false",
            f"common.user_dir={os.path.join(REPO, 'rxf_fairseq')}",
            "optimization.max_update=2",
            "checkpoint.no_save=true",
            "common.log_interval=1",
            *tiny,
        ],
        cwd=str(tmp_path),
    )
    output = proc.stdout
    assert "criterion: RXFSentencePredictionR3FCriterion" in output and "RXFSentencePredictionR4FTask" in output
    assert '"train_num_updates": "2"' in output and "train_symm_kl" in output


# ------------------------------------------------------------------------------- tiny runs, end to end


def tiny_run(script, *args, env):
    proc = subprocess.run(
        ["bash", os.path.join(RUN_SCRIPTS, script), *args],
        env=dict(os.environ, CPU="1", **env),
        capture_output=True,
        text=True,
    )
    assert proc.returncode == 0, (proc.stdout + proc.stderr)[-5000:]
    return proc


def read_records(root):
    from rxf_repro.records import load_records

    return load_records([str(root)])


TINY_GLUE = [
    "--tiny",
    "--set",
    "optimization.max_update=6",
    "--set",
    "lr_scheduler.warmup_updates=1",
    "--set",
    "lr_scheduler.total_num_update=6",
    "--set",
    "optimization.lr=[0.001]",
    "--",
    *TINY_ROBERTA,
    "--batch-size",
    "16",
    "--log-interval",
    "1",
]


def test_glue_classification_and_regression_end_to_end(toy_data, pretrained_roberta, tmp_path):
    glue_bin = tmp_path / "glue-bin"
    shutil.copytree(toy_data["cls"], glue_bin / "RTE-bin")
    # STS-B: the same sentences with regression targets (text labels, as preprocess/glue.sh writes them)
    shutil.copytree(os.path.join(toy_data["cls"], "input0"), glue_bin / "STS-B-bin" / "input0")
    (glue_bin / "STS-B-bin" / "label").mkdir()
    raw = os.path.join(toy_data["root"], "raw")
    for split in ("train", "valid"):
        labels = open(os.path.join(raw, f"{split}.label")).read().split()
        (glue_bin / "STS-B-bin" / "label" / f"{split}.label").write_text(
            "".join(f"{0.2 + 0.6 * int(v)}\n" for v in labels)
        )
    for sub in ("input0", "label"):  # a second validation split, as MNLI's dev_mismatched (valid1)
        for ext in ("bin", "idx"):
            shutil.copy(glue_bin / "RTE-bin" / sub / f"valid.{ext}", glue_bin / "RTE-bin" / sub / f"valid1.{ext}")
    env = {"GLUE_BIN": str(glue_bin), "ROBERTA": pretrained_roberta, "SAVE_ROOT": str(tmp_path / "runs")}
    # the script's one real run; STS-B and the rerun: its argv for rxf-run, run in a fork of this interpreter
    tiny_run("glue.sh", "RTE", "r3f", "1", "--set", "dataset.valid_subset='valid,valid1'", *TINY_GLUE, env=env)
    forked(runs.main, (rxf_run_argv("glue.sh", "STS-B", "r4f", "1", *TINY_GLUE, env=dict(env, CPU="1")),))
    records = {(r["task"], r["seed"]): r for r in read_records(tmp_path / "runs")}
    assert set(records) == {("RTE", 1), ("STS-B", 1)}
    rte = records[("RTE", 1)]
    assert rte["kind"] == "glue" and rte["method"] == "r3f" and rte["tiny"] is True
    assert rte["hparams"] == {"noise_type": "uniform", "r3f_lambda": 1.0}
    assert 0 <= rte["metrics"]["accuracy"] <= 100 and rte["best_update"] <= 6
    assert rte["metrics"]["accuracy_mm"] == rte["metrics"]["accuracy"]  # valid1 is a copy of valid
    assert 0 < rte["time_to_best_s"] <= rte["wall_time_s"]
    stsb = records[("STS-B", 1)]
    assert {"pearson", "spearman"} <= set(stsb["metrics"]) and "accuracy" not in stsb["metrics"]
    # the best checkpoint is the one the record describes
    log = open(os.path.join(os.path.dirname(rte["path"]), "train.log")).read()
    assert f'"valid_num_updates": "{rte["best_update"]}"' in log
    # a finished run is not run again
    again = forked(runs.main, (rxf_run_argv("glue.sh", "RTE", "r3f", "1", *TINY_GLUE, env=dict(env, CPU="1")),))
    assert "done already" in again.stdout


def test_xnli_zero_shot_end_to_end(toy_data, pretrained_roberta, tmp_path):
    data = tmp_path / "xnli-bin"
    shutil.copytree(toy_data["cls"], data)
    for sub in ("input0", "label"):  # two "languages", loadable as their own splits
        for lang in ("en", "fr"):
            for ext in ("bin", "idx"):
                shutil.copy(data / sub / f"valid.{ext}", data / sub / f"test_{lang}.{ext}")
    env = {"XNLI_BIN": str(data), "XLMR": pretrained_roberta, "SAVE_ROOT": str(tmp_path / "runs")}
    tiny_run("xnli.sh", "r4f", "1", "--languages", "en", "fr", *TINY_GLUE, env=env)
    (record,) = read_records(tmp_path / "runs")
    assert record["kind"] == "xnli" and record["method"] == "r4f" and set(record["metrics"]) == {"en", "fr"}
    # both "languages" are the valid split, which the best checkpoint was chosen on
    assert record["metrics"]["en"] == record["metrics"]["fr"] == pytest.approx(record["valid_accuracy"], abs=0.051)


def test_summarization_train_generate_score_end_to_end(tiny_bpe, tmp_path):
    """preprocess/summarization.sh -> a tiny BART "pretrained" checkpoint -> run_scripts/summarization.sh:
    R3F fine-tuning, fairseq-generate with the config's decoding settings, rxf-rouge, one record."""
    raw = tmp_path / "raw"
    raw.mkdir()
    articles = [
        "the cat sat on the mat and then the cat slept .",
        "rain fell in the hills all night , then it stopped .",
        "a man bought bread and milk at the shop .",
        "the team won the game in the last minute .",
    ]
    summaries = ["the cat slept .", "it rained all night .", "a man went shopping .", "the team won ."]
    for split, n in (("train", 4), ("val", 2), ("test", 3)):
        (raw / f"{split}.source").write_text("".join(articles[i % 4] + "\n" for i in range(n)))
        (raw / f"{split}.target").write_text("".join(summaries[i % 4] + "\n" for i in range(n)))
    summ_bin = tmp_path / "summ-bin"
    proc = subprocess.run(
        [
            "bash",
            os.path.join(REPO, "preprocess", "summarization.sh"),
            "cnn_dm",
            str(raw),
            str(summ_bin / "cnn_dm-bin"),
            "--encoder-json",
            tiny_bpe["encoder"],
            "--vocab-bpe",
            tiny_bpe["vocab"],
            "--dict",
            tiny_bpe["dict"],
        ],
        capture_output=True,
        text=True,
    )
    assert proc.returncode == 0, proc.stderr[-3000:]
    bart = ["--share-all-embeddings", "--share-decoder-input-output-embed", "--layernorm-embedding", *TINY_BART]
    fairseq_cli(
        "train",
        [
            str(summ_bin / "cnn_dm-bin"),
            "--task",
            "translation",
            "--source-lang",
            "source",
            "--target-lang",
            "target",
            *bart,
            "--optimizer",
            "adam",
            "--lr",
            "1e-3",
            "--batch-size",
            "4",
            "--required-batch-size-multiple",
            "1",
            "--max-update",
            "2",
            "--save-dir",
            str(tmp_path / "bart"),
            "--no-epoch-checkpoints",
            "--cpu",
            "--seed",
            "1",
        ],
    )
    bpe_dir = os.path.dirname(tiny_bpe["encoder"])
    env = {
        "SUMM_BIN": str(summ_bin),
        "BART": str(tmp_path / "bart" / "checkpoint_last.pt"),
        "BPE_DIR": bpe_dir,
        "SAVE_ROOT": str(tmp_path / "runs"),
    }
    tiny_run(
        "summarization.sh",
        "cnn_dm",
        "r3f",
        "--tiny",
        "--rouge-backend",
        "python",
        "--gen-batch-size",
        "4",
        "--set",
        "optimization.max_update=4",
        "--set",
        "lr_scheduler.warmup_updates=1",
        "--set",
        "lr_scheduler.total_num_update=4",
        "--set",
        "optimization.update_freq=[1]",
        "--set",
        "generation.min_len=1",
        "--set",
        "generation.max_len_b=12",
        "--set",
        "generation.beam=2",
        "--",
        *bart,
        "--lr",
        "1e-3",
        env=env,
    )
    (record,) = read_records(tmp_path / "runs")
    assert record["kind"] == "summarization" and record["task"] == "cnn_dm" and record["method"] == "r3f"
    assert set(record["metrics"]) == {"rouge1", "rouge2", "rougeL"}
    assert all(0 <= v <= 100 for v in record["metrics"].values())
    run_dir = os.path.dirname(record["path"])
    refs = open(os.path.join(run_dir, "test.ref")).read().splitlines()
    assert refs == [summaries[i % 4] for i in range(3)]  # the decoded binaries give back the references
    assert len(open(os.path.join(run_dir, "test.hypo")).read().splitlines()) == 3
    # the generation used the config's decoding settings (with the overrides) and the references came first
    assert "--no-repeat-ngram-size 3" in " ".join(record["generate"]) and record["rouge"][1].endswith("test.ref")


@pytest.mark.parametrize(
    "path", ["/plain/path", "runs/r3f_lambda=0.5,noise_type=normal/seed1", "it's", "/x\\y", "/ends/with\\", "/a\\'b"]
)
def test_paths_survive_hydra_overrides(path):
    from hydra.core.override_parser.overrides_parser import OverridesParser

    assert OverridesParser.create().parse_override("++task.data=" + runs.hydra_quote(path)).value() == path
