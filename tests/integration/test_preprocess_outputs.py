"""What the three pipelines (preprocess/{glue,xnli,summarization}.sh) do to their output folder, as wiring: the rules
themselves live in ``rxf_repro.outputs`` and ``rxf_repro.process`` and are proven there once, in tests/unit/test_outputs.py and tests/integration/test_process.py
(a user's folder or another tool's output refused and left intact, ``--overwrite``, links, files, inputs, a parent we
cannot write in, a killed run's leftovers). Here each pipeline is shown to go through them (one test per pipeline), and
what is the pipelines' own is proven: ``glue.sh ALL`` is one output, a signal or a kill during the work leaves the old
output and nothing running, a bad model with two workers is one line, exit 1, before any work, a comma in the output
path.

The pipelines run as the ``main`` their scripts ``exec``, in this process, or in a fork of it where a test signals the
run (``tests/pipelines.py``); each script runs for real in its own module's tests."""

import importlib
import json
import os
import signal
import subprocess

import pytest

from rxf_repro import process
from rxf_repro.outputs import MARKER, owner
from tests.helpers import REPO, bpe_flags, run_tool, tree_digest
from tests.integration.test_preprocess_glue import GLUE_FILES, data_digest, decode_split, glue_all, write_glue  # noqa: F401,F811
from tests.integration.test_preprocess_summarization import CNN_DM, write_lines
from tests.integration.test_preprocess_xnli import tiny_spm, write_xnli  # noqa: F401,F811
from tests.pipelines import assert_group_gone, kill_group, pipeline, read_rest, read_until, start_pipeline

TOOLS = {"glue": "preprocess/glue.sh", "xnli": "preprocess/xnli.sh", "summarization": "preprocess/summarization.sh"}
KINDS = {"glue": "glue-binaries", "xnli": "xnli-binaries", "summarization": "summarization-binaries"}


@pytest.fixture(scope="module")
def inputs(tmp_path_factory, tiny_bpe, tiny_spm):
    """Small valid inputs of each pipeline: ``inputs(pipeline, out, *extra)`` runs it (``tests.pipelines.pipeline``)."""
    root = tmp_path_factory.mktemp("inputs")
    glue = write_glue(root / "glue", {k: v for k, v in GLUE_FILES.items() if k.startswith(("RTE/", "MNLI/"))})
    xnli = write_xnli(root / "XNLI-1.0")
    cnn_dm = write_lines(root / "cnn_dm", {k: v[:2] for k, v in CNN_DM.items()})
    bpe = bpe_flags(tiny_bpe)
    spm = ["--sentencepiece-model", tiny_spm["model"], "--dict", tiny_spm["dict"]]
    args = {
        "glue": [str(glue), "RTE"],
        "xnli": [str(glue / "MNLI"), str(xnli)],
        "summarization": ["cnn_dm", str(cnn_dm)],
    }

    def run(name, out, *extra, models=None):
        return pipeline(name, [*args[name], out, *(models or (spm if name == "xnli" else bpe)), *extra])

    return run


def assert_one_line_error(proc, pipeline, *needles):
    """Exit 1 and one ``PIPELINE: error: ...`` line naming what is wrong; no traceback."""
    errors = [line for line in proc.stderr.splitlines() if line.startswith(f"{pipeline}: error: ")]
    assert proc.returncode == 1 and len(errors) == 1, proc.stderr[-3000:]
    assert "Traceback" not in proc.stderr, proc.stderr[-3000:]
    for needle in needles:
        assert needle in errors[0], errors[0]
    assert "BPE-encoding" not in proc.stderr and "sentencepiece:" not in proc.stderr  # before any work


def leftovers(folder):
    return sorted(name for name in os.listdir(folder) if ".tmp-" in name or ".old-" in name)


def dead_pid():
    proc = subprocess.Popen(["true"])
    proc.wait()
    return proc.pid


# ------------------------------------------------------------------------------------------ ownership (wiring)


@pytest.mark.parametrize("name", sorted(TOOLS))
def test_a_users_folder_is_refused_before_any_work_and_overwrite_replaces_it(tmp_path, inputs, name):
    """The pipeline hands OUT, its own tool and kind to ``rxf_repro.outputs`` before any work: a user's folder is
    refused and left intact; ``--overwrite`` replaces it with a marked output, which a rerun replaces without it."""
    out = tmp_path / "out"
    out.mkdir()
    (out / "notes.txt").write_text("mine")
    (out / "summary.json").write_text("{}")  # what the pipelines once took as their own mark
    proc = inputs(name, out)
    assert_one_line_error(
        proc,
        name,
        f"output folder {out}: exists and is not an earlier {KINDS[name]} output of {TOOLS[name]}",
        "--overwrite",
    )
    assert sorted(os.listdir(out)) == ["notes.txt", "summary.json"] and (out / "notes.txt").read_text() == "mine"
    assert sorted(os.listdir(tmp_path)) == ["out"]
    proc = inputs(name, out, "--overwrite")
    assert proc.returncode == 0, proc.stderr[-3000:]
    assert not (out / "notes.txt").exists() and os.path.isfile(out / "summary.json")
    assert {k: owner(out)[k] for k in ("tool", "kind")} == {"tool": TOOLS[name], "kind": KINDS[name]}
    assert leftovers(tmp_path) == []
    proc = inputs(name, out)  # its own earlier output: replaced without --overwrite
    assert proc.returncode == 0, proc.stderr[-3000:]


@pytest.mark.parametrize("name", sorted(TOOLS))
def test_every_option_has_help_and_is_in_the_scripts_usage(name):
    module = importlib.import_module(f"rxf_repro.data.{name}")
    usage = run_tool(["bash", os.path.join(REPO, TOOLS[name]), "--help"])  # argparse's, through the script
    assert usage.returncode == 0 and usage.stdout.startswith(f"usage: {TOOLS[name]}")
    actions = [a for a in module.build_parser()._actions if a.dest != "help"]
    assert "overwrite" in [a.dest for a in actions]
    for action in actions:
        assert action.help and len(action.help.split()) >= 2, action.dest
        for flag in action.option_strings:
            assert flag in usage.stdout, flag


FAILING_RUNS = {  # arguments that parse, and fail at once (a missing input)
    "glue": ["missing", "RTE", "out", "--dict", "missing.txt", "--wordpiece-vocab", "missing.txt"],
    "xnli": ["missing", "missing", "out", "--sentencepiece-model", "missing.model", "--dict", "missing.txt"],
    "summarization": ["cnn_dm", "missing", "out", "--encoder-json", "a", "--vocab-bpe", "b", "--dict", "c"],
    "wordnet": ["out", "--wordnet-dir", "missing"],
}


@pytest.mark.parametrize("name", ["glue", "xnli", "summarization", "wordnet"])
def test_every_pipeline_turns_sigterm_into_its_cleanup(tmp_path, monkeypatch, name):
    """Each ``main`` runs in ``cli.tool_main``, which calls ``process.exit_on_sigterm()``, so SIGTERM runs the cleanup
    Ctrl-C runs (no temporary folder, nothing left running: proven for glue.sh end to end below)."""
    module = importlib.import_module(f"rxf_repro.data.{name}")
    signal.signal(signal.SIGTERM, signal.SIG_DFL)  # whatever an earlier test's main left (conftest restores it after)
    monkeypatch.chdir(tmp_path)
    assert module.main(FAILING_RUNS[name]) == 1
    assert signal.getsignal(signal.SIGTERM) is process._raise_exit


# ------------------------------------------------------------------------------------------ kills and leftovers


def test_kill_between_the_two_renames_leaves_the_old_output_which_the_next_run_restores(tmp_path, inputs):
    """The pipelines clean up a killed run's leftovers before any work (``outputs.check_destination``), so even a failing
    rerun puts the old output back and removes the dead run's half-built folder."""
    out = tmp_path / "out"
    assert inputs("glue", out).returncode == 0
    before, same_data = tree_digest(out), data_digest(out)
    pid = dead_pid()  # a run killed after renaming OUT aside, before renaming its new folder in:
    os.rename(out, tmp_path / f".out.old-{pid}-abcd")
    (tmp_path / f".out.tmp-{pid}-efgh").mkdir()
    (tmp_path / f".out.tmp-{pid}-efgh" / "half.bin").write_bytes(b"\0" * 100)
    bad = inputs("glue", out, "--encoder-json", str(tmp_path / "missing.json"))  # a failing next run
    assert bad.returncode == 1 and "missing.json" in bad.stderr, bad.stderr[-2000:]
    assert tree_digest(out) == before and leftovers(tmp_path) == []  # the old output is back, whole
    old = os.stat(out).st_ino
    os.rename(out, tmp_path / f".out.old-{pid}-abcd")
    assert inputs("glue", out).returncode == 0  # a successful next run replaces it
    assert leftovers(tmp_path) == [] and data_digest(out) == same_data and os.stat(out).st_ino != old


def sst2(root, rows):
    """GLUE's SST-2 folder with ``rows`` training sentences."""
    files = {k: v for k, v in GLUE_FILES.items() if k.startswith("SST-2/")}
    files["SST-2/train.tsv"] = "sentence\tlabel\n" + "".join(f"a film of {i} parts \t{i % 2}\n" for i in range(rows))
    return write_glue(root, files)


@pytest.mark.parametrize("how", ["SIGTERM", "Ctrl-C", "SIGKILL"])
def test_a_signal_or_a_kill_during_encoding_leaves_the_old_output_and_nothing_running(tmp_path, tiny_bpe, how):
    """glue.sh with two workers, stopped while its threads encode (each line slowed down, so that the encoding still
    runs when the signal lands, however slow the machine). Three ways, three code paths: SIGTERM to the process
    (``cli.tool_main``'s ``exit_on_sigterm``: SystemExit through every ``finally``, exit 143); Ctrl-C to the
    terminal's process group (``cli.tool_main`` says so, exit 130); SIGKILL (no cleanup can run: the next run
    removes the temporary folder). Every time the old output is left whole and nothing of the run outlives it."""
    out = tmp_path / "out"
    command = [tmp_path / "glue", "SST-2", out, *bpe_flags(tiny_bpe), "--workers", "2"]
    sst2(tmp_path / "glue", 3)
    assert pipeline("glue", command).returncode == 0
    before = tree_digest(out)
    sst2(tmp_path / "glue", 400)  # 400 lines at 50 ms: 10 s of encoding on two workers, unless stopped
    run = start_pipeline("glue", command, encode_delay=0.05)
    try:
        read_until(run, "BPE-encoding train.input0")
        if how == "SIGTERM":
            os.kill(run.pid, signal.SIGTERM)
        elif how == "Ctrl-C":  # the terminal sends SIGINT to the whole foreground process group
            os.killpg(run.pid, signal.SIGINT)
        else:
            os.kill(run.pid, signal.SIGKILL)
        rest = read_rest(run)  # to its end
        assert_group_gone(run.pid)  # nothing the run started: nothing of the test's has killed any of it yet
    finally:
        kill_group(run.pid)  # what a failed test left running
        run.wait(30)
    assert run.returncode == {"SIGTERM": 143, "Ctrl-C": 130, "SIGKILL": -signal.SIGKILL}[how], rest[-3000:]
    if how != "SIGKILL":  # the run's own cleanup, with nothing to say but Ctrl-C's line
        assert "Traceback" not in rest, rest[-3000:]
    if how == "Ctrl-C":
        assert rest.strip().splitlines()[-1] == f"glue: interrupted; {out} is as it was"
    assert tree_digest(out) == before
    if how == "SIGKILL":
        left = leftovers(tmp_path)  # the killed run's temporary folder, and nothing else
        assert left and all(name.startswith(f".out.tmp-{run.pid}-") for name in left), left
        sst2(tmp_path / "glue", 3)
        assert pipeline("glue", command).returncode == 0  # the next run removes it
    assert leftovers(tmp_path) == []


# ------------------------------------------------------------------------------------------ ALL as one unit


def test_all_is_one_output_and_each_task_folder_a_task_output(glue_all):
    out, _ = glue_all
    assert {k: owner(out)[k] for k in ("tool", "kind")} == {"tool": "preprocess/glue.sh", "kind": "glue-binaries-all"}
    tasks = sorted(name for name in os.listdir(out) if name != MARKER)
    assert tasks == [f"{t}-bin" for t in ("CoLA", "MNLI", "MRPC", "QNLI", "QQP", "RTE", "SST-2", "STS-B")]
    assert owner(out)["tasks"] == [t[:-4] for t in tasks]
    for task in tasks:
        assert {k: owner(out / task)[k] for k in ("kind", "task")} == {"kind": "glue-binaries", "task": task[:-4]}
    assert leftovers(out.parent) == []


def run_all(glue, out, tiny_bpe, *extra):
    return [glue, "ALL", out, *bpe_flags(tiny_bpe), *extra]


def test_a_killed_all_run_leaves_the_old_out_whole(tmp_path, tiny_bpe):
    glue = write_glue(tmp_path / "glue")
    out = tmp_path / "bin"
    assert pipeline("glue", run_all(glue, out, tiny_bpe)).returncode == 0
    before = tree_digest(out)
    (glue / "RTE" / "dev.tsv").write_text(GLUE_FILES["RTE/dev.tsv"].replace("Dana", "Anna"))  # a new run differs
    # MRPC's first line never finishes encoding: the run is surely still going when it is killed
    run = start_pipeline("glue", run_all(glue, out, tiny_bpe), stall_on="Amrozi accused his brother.")
    try:
        read_until(run, "[MRPC] GPT-2 BPE-encoding")  # CoLA-bin and MNLI-bin are complete, in the temporary folder
        os.kill(run.pid, signal.SIGKILL)
        read_rest(run)
    finally:
        kill_group(run.pid)
        run.wait(30)
    assert run.returncode == -signal.SIGKILL
    assert tree_digest(out) == before  # never two new task folders beside six old ones
    assert pipeline("glue", run_all(glue, out, tiny_bpe)).returncode == 0
    assert leftovers(tmp_path) == [] and tree_digest(out) != before
    assert decode_split(out / "RTE-bin", tiny_bpe, "valid", 0, 2)[0] == ["Anna reached port."]


def test_all_refuses_an_out_of_single_task_outputs_unless_overwrite(tmp_path, tiny_bpe, inputs):
    out = tmp_path / "glue-bin"
    assert inputs("glue", out / "RTE-bin").returncode == 0  # one task at a time, as before ALL was one output
    (out / "CoLA-bin").mkdir()
    (out / "CoLA-bin" / "summary.json").write_text("{}")  # and one from a version without markers
    before = tree_digest(out)
    glue = write_glue(tmp_path / "glue")
    proc = pipeline("glue", run_all(glue, out, tiny_bpe))
    assert_one_line_error(proc, "glue", "holds task folders written one at a time (CoLA-bin, RTE-bin)", "--overwrite")
    assert tree_digest(out) == before
    proc = pipeline("glue", run_all(glue, out / "RTE-bin", tiny_bpe))  # nor is a single task's folder an ALL output
    assert_one_line_error(proc, "glue", "it was written by preprocess/glue.sh (glue-binaries)")
    proc = pipeline("glue", run_all(glue, out, tiny_bpe, "--overwrite"))
    assert proc.returncode == 0, proc.stderr[-3000:]
    assert owner(out)["kind"] == "glue-binaries-all" and len(os.listdir(out)) == 9
    proc = inputs("glue", out)  # and a single task does not replace an ALL output
    assert_one_line_error(proc, "glue", "it was written by preprocess/glue.sh (glue-binaries-all)")


# ------------------------------------------------------------------------------------------ bad models: no hang

BAD_MODELS = {  # case -> (pipeline, file name, content, flag it replaces, message)
    "encoder.json not JSON": ("glue", "encoder.json", b'{"a": 1,', "--encoder-json", "encoder.json:1: not valid JSON"),
    "encoder.json not GPT-2's": (
        "summarization",
        "encoder.json",
        b'{"<|endoftext|>": 1}',
        "--encoder-json",
        "encoder.json: lacks 256 of the 256 byte symbols",
    ),
    "vocab.bpe not UTF-8": (
        "glue",
        "vocab.bpe",
        b"#version: 0.2\n\xff\xfe h\n",
        "--vocab-bpe",
        "vocab.bpe:2: not UTF-8",
    ),
    "vocab.bpe merge of three": (
        "summarization",
        "vocab.bpe",
        b"#version: 0.2\nt h e\n",
        "--vocab-bpe",
        "vocab.bpe:2: expected a merge of two symbols",
    ),
    "sentencepiece model garbage": (
        "xnli",
        "sentencepiece.bpe.model",
        bytes(range(256)) * 4,
        "--sentencepiece-model",
        "sentencepiece.bpe.model: not a sentencepiece model",
    ),
}


@pytest.mark.parametrize("case", sorted(BAD_MODELS))
def test_a_malformed_model_with_two_workers_is_one_line_not_a_hang(tmp_path, inputs, tiny_bpe, tiny_spm, case):
    """A bad model is loaded, and refused, before any work (it hung forever once, when worker processes loaded it)."""
    name, filename, content, flag, message = BAD_MODELS[case]
    (tmp_path / filename).write_bytes(content)
    if name == "xnli":
        files = {"--sentencepiece-model": tiny_spm["model"], "--dict": tiny_spm["dict"]}
    else:
        files = {"--encoder-json": tiny_bpe["encoder"], "--vocab-bpe": tiny_bpe["vocab"], "--dict": tiny_bpe["dict"]}
    files[flag] = str(tmp_path / filename)
    models = [word for item in files.items() for word in item]
    proc = inputs(name, tmp_path / "out", "--workers", "2", models=models)
    assert_one_line_error(proc, name, str(tmp_path / message))
    assert sorted(os.listdir(tmp_path)) == [filename]


# ------------------------------------------------------------------------------------------ the pipelines' own


@pytest.mark.parametrize("name", sorted(TOOLS))
def test_a_comma_in_the_output_path_works(tmp_path, inputs, tiny_bpe, name):
    """fairseq-preprocess splits --validpref/--testpref on commas: the pipelines give it prefixes relative to
    the temporary folder, so the user's path reaches fairseq only as --destdir, which it does not split (nor do its
    workers' part files there: two workers for glue and summarization; xnli's 30 splits with two workers each are
    some 200 forks of this process, and its prefixes are the same whatever the number of workers)."""
    out = tmp_path / "a,b" / "out,v2"
    proc = inputs(name, out, "--workers", "1" if name == "xnli" else "2")
    assert proc.returncode == 0, proc.stderr[-3000:]
    if name == "glue":
        assert decode_split(out, tiny_bpe, "valid", 0, 2)[0] == ["Dana reached port."]
    elif name == "xnli":
        assert all(os.path.isfile(out / "input0" / f"test_{lang}.bin") for lang in ("en", "ur"))
    else:
        assert json.load(open(out / "summary.json"))["splits"]["test"]["examples"] == 2
        assert os.path.getsize(out / "test.source-target.source.bin") > 0
    assert leftovers(out.parent) == []


def test_lone_surrogate_in_reddit_tifu_is_one_line(tmp_path, tiny_bpe):
    from tests.integration.test_preprocess_summarization import TIFU_POSTS, write_tifu

    posts = [dict(TIFU_POSTS[0], tldr="bad \ud800 tldr")] + TIFU_POSTS[1:]
    raw = write_tifu(tmp_path / "raw", posts)
    assert '"bad \\ud800 tldr"' in (raw / "tifu_all_tokenized_and_filtered.json").read_text().splitlines()[0]
    proc = pipeline("summarization", ["reddit_tifu", raw, tmp_path / "out", *bpe_flags(tiny_bpe)])
    assert_one_line_error(
        proc,
        "summarization",
        "tifu_all_tokenized_and_filtered.json:1: field 'tldr' has a lone surrogate \\ud800 at character 5",
    )
    assert sorted(os.listdir(tmp_path)) == ["raw"]
