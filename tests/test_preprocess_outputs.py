"""What the three pipelines (preprocess/{glue,xnli,summarization}.sh) do to their output folder: only their own
earlier output is replaced, atomically (``rxf_repro.outputs``); killed runs leave nothing that the next run does not
clean up; ``glue.sh ALL`` is one output; a bad model or destination is one line, exit 1, before any work."""

import importlib
import json
import os
import shutil
import signal
import subprocess
import sys
import time

import pytest

from benchmarks.preprocess import synthetic_glue
from rxf_repro.outputs import MARKER, owner
from tests.helpers import REPO, as_from_a_terminal, bpe_flags, preprocess_command, tree_digest
from tests.helpers import run_tool as run
from tests.test_preprocess_glue import GLUE_FILES, data_digest, decode_split, glue_all, write_glue  # noqa: F401,F811
from tests.test_preprocess_summarization import CNN_DM, write_lines
from tests.test_preprocess_xnli import tiny_spm, write_xnli  # noqa: F401,F811

pytestmark = pytest.mark.slow  # fairseq or a pipeline in subprocesses: make test-fast skips it

TOOLS = {"glue": "preprocess/glue.sh", "xnli": "preprocess/xnli.sh", "summarization": "preprocess/summarization.sh"}
KINDS = {"glue": "glue-binaries", "xnli": "xnli-binaries", "summarization": "summarization-binaries"}


@pytest.fixture(scope="module")
def inputs(tmp_path_factory, tiny_bpe, tiny_spm):
    """Small valid inputs of each pipeline: ``command(pipeline, out)`` gives its command line."""
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

    def command(pipeline, out, *extra, models=None):
        return [
            "bash",
            os.path.join(REPO, TOOLS[pipeline]),
            *args[pipeline],
            str(out),
            *(models or (spm if pipeline == "xnli" else bpe)),
            *extra,
        ]

    return command


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


# ------------------------------------------------------------------------------------------ ownership


@pytest.mark.parametrize("pipeline", sorted(TOOLS))
def test_a_folder_holding_a_users_file_is_refused_and_left_intact(tmp_path, inputs, pipeline):
    out = tmp_path / "out"
    out.mkdir()
    (out / "notes.txt").write_text("mine")
    (out / "summary.json").write_text("{}")  # what the pipelines once took as their own mark
    proc = run(inputs(pipeline, out))
    assert_one_line_error(
        proc,
        pipeline,
        f"output folder {out}: exists and is not an earlier {KINDS[pipeline]} output of {TOOLS[pipeline]}",
        "--overwrite",
    )
    assert sorted(os.listdir(out)) == ["notes.txt", "summary.json"] and (out / "notes.txt").read_text() == "mine"
    assert sorted(os.listdir(tmp_path)) == ["out"]


@pytest.mark.parametrize(
    "pipeline,other",
    [
        ("glue", {"tool": "rxf-report", "kind": "report"}),
        ("xnli", {"tool": "preprocess/glue.sh", "kind": "glue-binaries"}),
        ("summarization", {"tool": "rxf-demo", "kind": "demo"}),
    ],
)
def test_another_tools_output_is_refused(tmp_path, inputs, pipeline, other):
    out = tmp_path / "out"
    out.mkdir()
    (out / MARKER).write_text(json.dumps(other))
    (out / "table2.md").write_text("someone else's")
    proc = run(inputs(pipeline, out))
    assert_one_line_error(proc, pipeline, f"it was written by {other['tool']} ({other['kind']})")
    assert (out / "table2.md").read_text() == "someone else's" and sorted(os.listdir(tmp_path)) == ["out"]


@pytest.mark.parametrize("pipeline", sorted(TOOLS))
def test_overwrite_replaces_a_users_folder_and_marks_it(tmp_path, inputs, pipeline):
    out = tmp_path / "out"
    out.mkdir()
    (out / "notes.txt").write_text("mine")
    proc = run(inputs(pipeline, out, "--overwrite"))
    assert proc.returncode == 0, proc.stderr[-3000:]
    assert not (out / "notes.txt").exists() and os.path.isfile(out / "summary.json")
    assert {k: owner(out)[k] for k in ("tool", "kind")} == {"tool": TOOLS[pipeline], "kind": KINDS[pipeline]}
    assert leftovers(tmp_path) == []
    proc = run(inputs(pipeline, out))  # its own earlier output: replaced without --overwrite
    assert proc.returncode == 0, proc.stderr[-3000:]


@pytest.mark.parametrize("pipeline", sorted(TOOLS))
def test_every_option_has_help_and_is_in_the_scripts_usage(pipeline):
    module = importlib.import_module(f"rxf_repro.data.{pipeline}")
    usage = run(["bash", os.path.join(REPO, TOOLS[pipeline]), "--help"])
    assert usage.returncode == 0 and usage.stdout.startswith(f"usage: {TOOLS[pipeline]}")
    actions = [a for a in module.build_parser()._actions if a.dest != "help"]
    assert "overwrite" in [a.dest for a in actions]
    for action in actions:
        assert action.help and len(action.help.split()) >= 2, action.dest
        for flag in action.option_strings:
            assert flag in usage.stdout, flag


# ------------------------------------------------------------------------------------------ kills and leftovers


def test_kill_between_the_two_renames_leaves_the_old_output_which_the_next_run_restores(tmp_path, inputs):
    out = tmp_path / "out"
    assert run(inputs("glue", out)).returncode == 0
    before, same_data = tree_digest(out), data_digest(out)
    pid = dead_pid()  # a run killed after renaming OUT aside, before renaming its new folder in:
    os.rename(out, tmp_path / f".out.old-{pid}-abcd")
    (tmp_path / f".out.tmp-{pid}-efgh").mkdir()
    (tmp_path / f".out.tmp-{pid}-efgh" / "half.bin").write_bytes(b"\0" * 100)
    bad = run(inputs("glue", out, "--encoder-json", str(tmp_path / "missing.json")))  # a failing next run
    assert bad.returncode == 1 and "missing.json" in bad.stderr, bad.stderr[-2000:]
    assert tree_digest(out) == before and leftovers(tmp_path) == []  # the old output is back, whole
    os.rename(out, tmp_path / f".out.old-{pid}-abcd")
    assert run(inputs("glue", out)).returncode == 0  # a successful next run replaces it
    assert leftovers(tmp_path) == [] and data_digest(out) == same_data and tree_digest(out) != before


def test_a_dead_runs_temporary_folder_is_removed_and_a_live_ones_kept(tmp_path, inputs):
    stale = tmp_path / f".out.tmp-{dead_pid()}-abcd"
    live = tmp_path / f".out.tmp-{os.getpid()}-efgh"  # a run still going (this process)
    for folder in (stale, live):
        folder.mkdir()
        (folder / "train.bin").write_bytes(b"\0" * 1000)
    assert run(inputs("summarization", tmp_path / "out")).returncode == 0
    assert not stale.exists() and live.exists()


def sst2_commands(tmp_path, tiny_bpe):
    """glue.sh SST-2 into tmp_path/out: on the tests' few rows, and on rows enough (SST-2 in GLUE's layout, made
    by the benchmark) for encoding and binarizing to take seconds."""
    import random

    small = write_glue(tmp_path / "small", {k: v for k, v in GLUE_FILES.items() if k.startswith("SST-2/")})
    big = synthetic_glue(tmp_path / "big", 15000, random.Random(1))[0]
    return [
        preprocess_command("glue.sh", glue, "SST-2", tmp_path / "out", *bpe_flags(tiny_bpe)) for glue in (small, big)
    ]


def children_of(pid):
    found = []
    for entry in os.listdir("/proc"):
        if entry.isdigit():
            try:
                fields = open(f"/proc/{entry}/stat").read().rsplit(")", 1)[1].split()
            except OSError:
                continue
            if int(fields[1]) == pid:
                found.append(int(entry))
    return found


def running(pid):
    try:
        return open(f"/proc/{pid}/stat").read().rsplit(")", 1)[1].split()[0] != "Z"
    except OSError:
        return False


def assert_all_gone(pids, within=20.0):
    """Every pid ends within ``within`` seconds; those that do not are killed, and the test fails."""
    deadline = time.time() + within
    while any(running(pid) for pid in pids) and time.time() < deadline:
        time.sleep(0.05)
    alive = [pid for pid in pids if running(pid)]
    for pid in alive:
        os.kill(pid, signal.SIGKILL)
    assert not alive, f"workers {alive} outlived the run"


def start_and_wait_for(command, text, workers_expected=True):
    """Start ``command`` in its own process group; return it once ``text`` is on its stderr (and, with
    ``workers_expected``, its pool workers are running), with its children and the stderr read so far."""
    proc = subprocess.Popen(
        command,
        stdout=subprocess.DEVNULL,
        stderr=subprocess.PIPE,
        text=True,
        env={**os.environ, "PYTHON": sys.executable},
        start_new_session=True,
        preexec_fn=as_from_a_terminal,
    )
    seen = []
    for line in proc.stderr:
        seen.append(line)
        if text in line:
            break
    else:
        raise AssertionError(f"never printed {text!r}:\n{''.join(seen)[-3000:]}")
    children = []
    deadline = time.time() + 20
    while workers_expected and not children and time.time() < deadline and proc.poll() is None:
        children = children_of(proc.pid)
        time.sleep(0.01)
    return proc, children, seen


@pytest.mark.parametrize("how", ["SIGTERM", "Ctrl-C"])
def test_sigterm_or_ctrl_c_during_encoding_stops_the_workers_and_leaves_the_old_output_alone(tmp_path, tiny_bpe, how):
    small, big = sst2_commands(tmp_path, tiny_bpe)
    out = tmp_path / "out"
    assert run(small).returncode == 0
    before = tree_digest(out)
    proc, children, _ = start_and_wait_for(big + ["--workers", "2"], "BPE-encoding train.input0")
    assert children, "the pool never started"
    if how == "SIGTERM":
        proc.send_signal(signal.SIGTERM)
    else:  # the terminal sends Ctrl-C's SIGINT to the whole foreground process group
        os.killpg(proc.pid, signal.SIGINT)
    try:  # read while it stops: a pipeline blocked on a full stderr pipe would look like a hang
        rest = proc.communicate(timeout=60)[1]
    except subprocess.TimeoutExpired:
        os.killpg(proc.pid, signal.SIGKILL)  # its own process group: the pool's workers too
        raise AssertionError(f"still running 60 s after {how}; its stderr:\n{proc.communicate()[1][-3000:]}")
    code = proc.returncode
    assert_all_gone(children + children_of(proc.pid))
    assert code == (143 if how == "SIGTERM" else 130), rest[-3000:]
    assert "Traceback" not in rest, rest[-3000:]
    if how == "Ctrl-C":
        assert rest.strip().splitlines()[-1] == f"glue: interrupted; {out} is as it was"
    assert tree_digest(out) == before and leftovers(tmp_path) == []


def test_sigkill_during_encoding_leaves_a_leftover_that_the_next_run_removes(tmp_path, tiny_bpe):
    small, big = sst2_commands(tmp_path, tiny_bpe)
    out = tmp_path / "out"
    assert run(small).returncode == 0
    before = tree_digest(out)
    proc, children, _ = start_and_wait_for(big + ["--workers", "2"], "BPE-encoding train.input0")
    children += children_of(proc.pid)
    proc.send_signal(signal.SIGKILL)
    assert proc.wait(60) == -signal.SIGKILL
    proc.stderr.close()
    assert [name for name in leftovers(tmp_path) if name.startswith(f".out.tmp-{proc.pid}-")], leftovers(tmp_path)
    assert tree_digest(out) == before
    assert_all_gone(children)  # the pool's workers see their parent's pipes close, and exit
    assert run(small).returncode == 0 and leftovers(tmp_path) == []


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
    return preprocess_command("glue.sh", glue, "ALL", out, *bpe_flags(tiny_bpe), *extra)


def test_a_killed_all_run_leaves_the_old_out_whole(tmp_path, tiny_bpe):
    glue = write_glue(tmp_path / "glue")
    out = tmp_path / "bin"
    assert run(run_all(glue, out, tiny_bpe)).returncode == 0
    before = tree_digest(out)
    (glue / "RTE" / "dev.tsv").write_text(GLUE_FILES["RTE/dev.tsv"].replace("Dana", "Anna"))  # a new run differs
    proc, _, seen = start_and_wait_for(
        run_all(glue, out, tiny_bpe), "[MRPC] GPT-2 BPE-encoding", workers_expected=False
    )
    proc.send_signal(signal.SIGKILL)  # CoLA-bin and MNLI-bin are complete by now, in the temporary folder
    proc.wait(60)
    assert tree_digest(out) == before  # never two new task folders beside six old ones
    assert run(run_all(glue, out, tiny_bpe)).returncode == 0
    assert leftovers(tmp_path) == [] and tree_digest(out) != before
    assert decode_split(out / "RTE-bin", tiny_bpe, "valid", 0, 2)[0] == ["Anna reached port."]


def test_all_refuses_an_out_of_single_task_outputs_unless_overwrite(tmp_path, tiny_bpe, inputs):
    out = tmp_path / "glue-bin"
    assert run(inputs("glue", out / "RTE-bin")).returncode == 0  # one task at a time, as before ALL was one output
    (out / "CoLA-bin").mkdir()
    (out / "CoLA-bin" / "summary.json").write_text("{}")  # and one from a version without markers
    before = tree_digest(out)
    glue = write_glue(tmp_path / "glue")
    proc = run(run_all(glue, out, tiny_bpe))
    assert_one_line_error(proc, "glue", "holds task folders written one at a time (CoLA-bin, RTE-bin)", "--overwrite")
    assert tree_digest(out) == before
    proc = run(run_all(glue, out / "RTE-bin", tiny_bpe))  # nor is a single task's folder an ALL output
    assert_one_line_error(proc, "glue", "it was written by preprocess/glue.sh (glue-binaries)")
    proc = run(run_all(glue, out, tiny_bpe, "--overwrite"))
    assert proc.returncode == 0, proc.stderr[-3000:]
    assert owner(out)["kind"] == "glue-binaries-all" and len(os.listdir(out)) == 9
    proc = run(inputs("glue", out))  # and a single task does not replace an ALL output
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
    pipeline, name, content, flag, message = BAD_MODELS[case]
    (tmp_path / name).write_bytes(content)
    if pipeline == "xnli":
        files = {"--sentencepiece-model": tiny_spm["model"], "--dict": tiny_spm["dict"]}
    else:
        files = {"--encoder-json": tiny_bpe["encoder"], "--vocab-bpe": tiny_bpe["vocab"], "--dict": tiny_bpe["dict"]}
    files[flag] = str(tmp_path / name)
    models = [word for item in files.items() for word in item]
    proc = run(inputs(pipeline, tmp_path / "out", "--workers", "2", models=models), timeout=120)  # hung forever once
    assert_one_line_error(proc, pipeline, str(tmp_path / message))
    assert sorted(os.listdir(tmp_path)) == [name]


# ------------------------------------------------------------------------------------------ one line, before the work


@pytest.mark.parametrize("pipeline", sorted(TOOLS))
def test_a_read_only_parent_is_one_line_before_any_work(tmp_path, inputs, pipeline):
    parent = tmp_path / "ro"
    parent.mkdir()
    parent.chmod(0o555)
    prefix = []
    if os.geteuid() == 0:  # root writes anywhere: drop that privilege, as an ordinary user has none
        if not shutil.which("setpriv"):
            pytest.skip("running as root without setpriv")
        prefix = ["setpriv", "--bounding-set=-dac_override,-dac_read_search"]
    try:
        proc = run(prefix + inputs(pipeline, parent / "out"))
        assert_one_line_error(
            proc, pipeline, f"output folder {parent / 'out'}: cannot write in {parent} (permission denied)"
        )
        assert os.listdir(parent) == []
    finally:
        parent.chmod(0o755)


@pytest.mark.parametrize("pipeline", sorted(TOOLS))
def test_a_symlinked_output_is_one_line_before_any_work(tmp_path, inputs, pipeline):
    target = tmp_path / "real"
    assert run(inputs(pipeline, target)).returncode == 0
    before = tree_digest(target)
    (tmp_path / "link").symlink_to(target)
    proc = run(inputs(pipeline, tmp_path / "link"))
    assert_one_line_error(proc, pipeline, f"output folder {tmp_path / 'link'}: is a symbolic link (to {target})")
    assert os.path.islink(tmp_path / "link") and tree_digest(target) == before
    assert sorted(os.listdir(tmp_path)) == ["link", "real"]


@pytest.mark.parametrize("pipeline", sorted(TOOLS))
def test_a_comma_in_the_output_path_works(tmp_path, inputs, tiny_bpe, pipeline):
    """fairseq-preprocess splits --validpref/--testpref on commas: the pipelines give it prefixes relative to
    the temporary folder, so the user's path reaches fairseq only as --destdir, which it does not split."""
    out = tmp_path / "a,b" / "out,v2"
    proc = run(inputs(pipeline, out, "--workers", "2"))
    assert proc.returncode == 0, proc.stderr[-3000:]
    if pipeline == "glue":
        assert decode_split(out, tiny_bpe, "valid", 0, 2)[0] == ["Dana reached port."]
    elif pipeline == "xnli":
        assert all(os.path.isfile(out / "input0" / f"test_{lang}.bin") for lang in ("en", "ur"))
    else:
        assert json.load(open(out / "summary.json"))["splits"]["test"]["examples"] == 2
        assert os.path.getsize(out / "test.source-target.source.bin") > 0
    assert leftovers(out.parent) == []


def test_lone_surrogate_in_reddit_tifu_is_one_line(tmp_path, tiny_bpe):
    from tests.test_preprocess_summarization import TIFU_POSTS, write_tifu

    posts = [dict(TIFU_POSTS[0], tldr="bad \ud800 tldr")] + TIFU_POSTS[1:]
    raw = write_tifu(tmp_path / "raw", posts)
    assert '"bad \\ud800 tldr"' in (raw / "tifu_all_tokenized_and_filtered.json").read_text().splitlines()[0]
    proc = run(preprocess_command("summarization.sh", "reddit_tifu", raw, tmp_path / "out", *bpe_flags(tiny_bpe)))
    assert_one_line_error(
        proc,
        "summarization",
        "tifu_all_tokenized_and_filtered.json:1: field 'tldr' has a lone surrogate \\ud800 at character 5",
    )
    assert sorted(os.listdir(tmp_path)) == ["raw"]
