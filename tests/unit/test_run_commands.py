"""run_scripts/ and configs/: the paper's values, the commands they make, and one tiny run per path."""

import os

import pytest

from rxf_repro import catalog
from rxf_repro.cli import UserError
from rxf_repro.commands import hydra_quote
from tests.helpers import flag, rxf_run_dry, rxf_run_error, script_rxf_run_argv, with_dry_run, wrapper_argv

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


def dry_run(script, *args, env=None):
    """The commands ``run_scripts/SCRIPT ARGS --dry-run`` prints: the script's argv for rxf-run, run in this
    process."""
    return rxf_run_dry(*script_rxf_run_argv(script, *with_dry_run(args), env=env))


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


def test_r_drop_and_r3fs_controls_make_their_criteria_and_grids():
    """rxf-run glue TASK rdrop: R-Drop's criterion over its 8 alphas (method/rdrop.yaml); R3F without noise: R3F's
    command with eps 0 over R3F's lambdas alone; R3F with the same dropout masks: R3F's commands plus the flag."""
    rdrop = glue_dry("RTE", "rdrop", "--seeds", "1", "--sweep")
    assert {flag(c, "--criterion") for c in rdrop} == {"sentence_prediction_rdrop"}
    assert [float(flag(c, "--rdrop-alpha")) for c in rdrop] == [0.1, 0.2, 0.5, 0.7, 1.0, 2.0, 3.0, 5.0]
    assert not {"--r3f-lambda", "--eps", "--noise-type"} & {a for c in rdrop for a in c}
    assert flag(rdrop[0], "--save-dir") == "runs/glue/rte/rdrop/rdrop_alpha=0.1/seed1"
    (sts,) = glue_dry("STS-B", "rdrop", "--seeds", "1")  # regression: the squared difference, as R3F's
    assert "--regression-target" in sts and flag(sts, "--rdrop-alpha") == "1.0"
    no_noise = glue_dry("RTE", "r3f-no-noise", "--seeds", "1", "--sweep")
    assert {(flag(c, "--criterion"), float(flag(c, "--eps")), flag(c, "--noise-type")) for c in no_noise} == {
        ("sentence_prediction_r3f", 0.0, "uniform")
    }
    assert sorted(float(flag(c, "--r3f-lambda")) for c in no_noise) == sorted(GLUE_LAMBDAS)
    r3f = glue_dry("RTE", "r3f", "--seeds", "1", "--sweep")
    same = glue_dry("RTE", "r3f-same-dropout", "--seeds", "1", "--sweep")
    assert len(same) == len(r3f) == 8 and all("--r3f-same-dropout" in c for c in same)
    for ours, theirs in zip(same, r3f, strict=True):  # the same commands but the flag (and the run folder)
        ours = [a for a in ours if a != "--r3f-same-dropout"]
        assert ours[: ours.index("--save-dir")] == theirs[: theirs.index("--save-dir")]
    rdrop = [c for c in summ_dry("cnn_dm", "rdrop", "--sweep") if c[2] == "fairseq_cli.train"]
    assert {(flag(c, "--criterion"), flag(c, "--label-smoothing")) for c in rdrop} == {
        ("label_smoothed_cross_entropy_rdrop", "0.1")
    }
    assert [float(flag(c, "--rdrop-alpha")) for c in rdrop] == [0.1, 0.3, 0.5, 0.7, 1.0, 2.0]


def test_dry_run_checks_r_drops_and_the_controls_options():
    base = ["glue", "RTE", "--data", "/d", "--checkpoint", "/m.pt", "--seeds", "1", "--dry-run"]
    for method, args, message in (
        ("rdrop", ["--set", "criterion.rdrop_alpha=-1"], "--rdrop-alpha must be >= 0 and finite"),
        ("rdrop", ["--set", "criterion.rdrop_alpha=nan"], "--rdrop-alpha must be >= 0 and finite"),
        ("r3f-same-dropout", ["--", "--r3f-one-forward"], "--r3f-same-dropout replays the clean pass's masks"),
    ):
        code, err = rxf_run_error(*base[:2], method, *base[2:], *args)
        assert code == 1 and message in err, err
    code, err = rxf_run_error("xnli", "rdrop", "--data", "/d", "--checkpoint", "/m.pt", "--dry-run")
    assert code == 2 and "invalid choice: 'rdrop'" in err  # XNLI: not among its methods


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
    """The resumed attempt is the first attempt's command (seed, overrides, extra fairseq flags, in order) with only
    a later restore file and the resets gone: fairseq then resumes bit for bit
    (tests/integration/test_fairseq_train.py::test_resume_after_interruption_equals_uninterrupted_run)."""
    args = [
        "--seeds",
        "1",
        "--save-root",
        str(tmp_path),
        "--set",
        "criterion.r3f_lambda=0.5",
        "--",
        "--update-freq",
        "2",
    ]
    (first,) = glue_dry("RTE", "r3f", *args)
    run_dir = flag(first, "--save-dir")
    os.makedirs(run_dir)
    open(os.path.join(run_dir, "checkpoint_last.pt"), "w").close()
    (again,) = glue_dry("RTE", "r3f", *args)
    resets = {"--reset-optimizer", "--reset-dataloader", "--reset-meters"}
    assert resets <= set(first) and flag(first, "--restore-file") == GLUE_ENV["ROBERTA"]
    checkpoint = os.path.join(run_dir, "checkpoint_last.pt")
    at = again.index(checkpoint) - 1  # a later --restore-file wins in fairseq's parser
    assert again[at] == "--restore-file" and flag(again, "--restore-file") == checkpoint
    assert again[:at] + again[at + 2 :] == [a for a in first if a not in resets]
    assert again[-2:] == ["--update-freq", "2"]  # the user's fairseq flags stay last


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
        code, err = rxf_run_error(*script_rxf_run_argv("glue.sh", *args, "--dry-run", env=GLUE_ENV))
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
    for dataset, method in zip(catalog.SUMMARIZATION, catalog.FAMILY_METHODS["summarization"] * 2):
        train, generate, _ = summ_dry(dataset, method)
        assert options.parse_args_and_arch(options.get_training_parser(), train[3:]).share_all_embeddings
        assert options.parse_args_and_arch(options.get_generation_parser(), generate[3:]).beam >= 4


# ------------------------------------------------------------------------------- tiny runs, end to end


@pytest.mark.parametrize(
    "path", ["/plain/path", "runs/r3f_lambda=0.5,noise_type=normal/seed1", "it's", "/x\\y", "/ends/with\\", "/a\\'b"]
)
def test_paths_survive_hydra_overrides(path):
    from hydra.core.override_parser.overrides_parser import OverridesParser

    assert OverridesParser.create().parse_override("++task.data=" + hydra_quote(path)).value() == path


def test_rouge_inside_rxf_run_leaves_ctrl_c_and_errors_to_rxf_run(monkeypatch, tmp_path):
    """rxf-run scores summaries with rxf-rouge's own code in its process: a Ctrl-C there is rxf-run's interrupt (exit
    130, "running the same command again resumes"), and rxf-rouge's error is rxf-run's one line."""
    from rxf_repro import evaluation, rouge

    command = ["rxf-rouge", str(tmp_path / "ref"), str(tmp_path / "hyp"), "-q"]

    def interrupted(args):
        raise KeyboardInterrupt

    monkeypatch.setattr(rouge.command, "score", interrupted)
    with pytest.raises(KeyboardInterrupt):
        evaluation.rouge_scores(command)
    monkeypatch.undo()
    with pytest.raises(UserError, match="ref"):
        evaluation.rouge_scores(command)  # neither file exists
