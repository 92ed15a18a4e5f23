"""make demo's WordNet tasks: deterministic, balanced, no synset in two splits, bad input in one line."""

import hashlib
import json
import os
import shutil

import pytest

from rxf_repro import outputs
from rxf_repro.data import glue, wordnet
from tests.helpers import REPO, preprocess_command, run_tool
from tests.pipelines import pipeline

FIXTURE = os.path.join(REPO, "tests", "fixtures", "wordnet")  # cut from Debian's wordnet-base (its README)


def build(out, *extra, script=False):
    """``preprocess/wordnet.sh OUT --wordnet-dir FIXTURE --train 60 --dev 24 EXTRA...``: its ``main`` in this process,
    or with ``script`` the shell script itself."""
    argv = [out, "--wordnet-dir", FIXTURE, "--train", "60", "--dev", "24", *extra]
    return run_tool(preprocess_command("wordnet.sh", *argv)) if script else pipeline("wordnet", argv)


def digest(folder):
    """Of every file but the output marker (which records when it was made)."""
    h = hashlib.sha256()
    for root, _, files in sorted(os.walk(folder)):
        for name in sorted(set(files) - {outputs.MARKER}):
            h.update(name.encode() + open(os.path.join(root, name), "rb").read())
    return h.hexdigest()


def test_the_command_is_deterministic_and_writes_glues_layout(tmp_path):
    """The script end to end once (``a``), its ``main`` again with the same seed and with another."""
    first, again, other = (
        build(tmp_path / "a", script=True),
        build(tmp_path / "b"),
        build(tmp_path / "c", "--seed", "2"),
    )
    assert first.returncode == again.returncode == other.returncode == 0, first.stderr[-2000:]
    assert digest(tmp_path / "a") == digest(tmp_path / "b") != digest(tmp_path / "c")
    assert sorted(os.listdir(tmp_path / "a")) == sorted([*wordnet.TASKS, "summary.json", ".rxf-output.json"])
    inputs, labels = glue.read_task(str(tmp_path / "a"), "WN-DEF").splits["valid"]  # RTE's header and columns
    assert len(inputs) == 2 and len(labels) == 24
    inputs, labels = glue.read_task(str(tmp_path / "a"), "WN-LEX").splits["train"]  # SST-2's
    assert len(inputs) == 1 and set(labels) == set(wordnet.LEXICOGRAPHER_FILES.values())
    summary = json.load(open(tmp_path / "a" / "summary.json"))
    assert summary["tasks"]["WN-POS"]["dev"]["majority_baseline"] == 25.0
    assert summary["tasks"]["WN-LEX"]["train"]["majority_baseline"] == pytest.approx(100 / 6, abs=0.01)


@pytest.mark.parametrize("case", ["bad line", "missing file"])
def test_bad_input_is_one_line_naming_the_file_and_writes_nothing(tmp_path, case):
    source = tmp_path / "wordnet"
    shutil.copytree(FIXTURE, source)
    if case == "bad line":
        lines = open(source / "data.verb").read().splitlines(keepends=True)
        lines[31] = "00001740 29 v not-a-count\n"
        open(source / "data.verb", "w").writelines(lines)
        needle = f"{source / 'data.verb'}:32: not a WordNet data line"
    else:
        os.remove(source / "data.adv")
        needle = (
            f"{source / 'data.adv'}: missing (WordNet 3.0's database files; on Debian: apt-get install wordnet-base)"
        )
    proc = pipeline("wordnet", [tmp_path / "out", "--wordnet-dir", source])
    errors = [line for line in proc.stderr.splitlines() if line.startswith("wordnet: error: ")]
    assert proc.returncode == 1 and len(errors) == 1 and needle in errors[0] and "Traceback" not in proc.stderr
    assert sorted(os.listdir(tmp_path)) == ["wordnet"]


def test_glue_sh_binarizes_a_wordnet_task_with_the_imported_wordpiece(tmp_path, minilm):
    assert build(tmp_path / "tsv").returncode == 0
    out = tmp_path / "bin"
    argv = [tmp_path / "tsv", "WN-LEX", out, "--wordpiece-vocab", minilm / "vocab.txt", "--dict", minilm / "dict.txt"]
    proc = pipeline("glue", argv)  # preprocess/glue.sh's main (the script itself: test_preprocess_glue.py)
    assert proc.returncode == 0, proc.stderr[-2000:]
    labels = sorted(line.split()[0] for line in open(out / "label" / "dict.txt") if not line.startswith("madeupword"))
    assert labels == sorted(wordnet.LEXICOGRAPHER_FILES.values())
    summary = json.load(open(out / "summary.json"))
    assert summary["splits"]["train"]["examples"] == 60 and summary["splits"]["valid"]["examples"] == 18
    assert "ALL" in pipeline("glue", ["--help"]).stdout


def test_rxf_run_fine_tunes_on_wn_pos_and_probes_the_wordnet_tasks(tmp_path):
    """The generalisation protocol with --source-task: make demo's order of runs, each with its task's config."""
    from tests.helpers import flag, rxf_run_dry

    common = ["--data", "/wn-bin", "--checkpoint", "/minilm/model.pt", "--seeds", "1", "--save-root", str(tmp_path)]
    probes = ["--probe-tasks", "WN-LEX", "WN-DEF", "WN-BSHIFT"]
    commands = rxf_run_dry("probe", "generalisation", "r3f", *common, "--source-task", "WN-POS", *probes)
    assert [c[3] for c in commands] == [f"/wn-bin/{t}-bin" for t in wordnet.TASKS]
    assert [flag(c, "--num-classes") for c in commands] == ["4", "6", "2", "2"]
    assert [flag(c, "--task") for c in commands] == ["sentence_prediction"] + ["sentence_prediction_probe"] * 3
    assert flag(commands[0], "--save-dir").endswith("/seed1/finetune-WN-POS")
    assert {flag(c, "--restore-file") for c in commands[1:]} == {
        flag(commands[0], "--save-dir") + "/checkpoint_best.pt"
    }
    pretrained = rxf_run_dry("probe", "generalisation", "none", *common, "--source-task", "WN-POS", *probes)
    assert [c[3] for c in pretrained] == [f"/wn-bin/{t}-bin" for t in wordnet.TASKS[1:]]
    from tests.helpers import rxf_run_error

    code, err = rxf_run_error("probe", "generalisation", "r3f", *common, "--source-task", "WN-NOPE", "--dry-run")
    assert code == 2 and "argument --source-task: unknown task 'WN-NOPE'" in err.strip().splitlines()[-1]


def test_records_and_the_report_know_the_wordnet_tasks(tmp_path):
    from rxf_repro import records, report

    for seed, accuracy in ((1, 91.0), (2, 93.0)):
        run = tmp_path / "runs" / f"s{seed}"
        record = {"kind": "glue", "task": "WN-POS", "method": "std", "seed": seed, "hparams": {}}
        records.write_record(str(run / "record.json"), dict(record, metrics={"accuracy": accuracy}, tiny=True))
        probe = dict(record, kind="probe", task="WN-LEX", metrics={"accuracy": 70.0 + seed}, tiny=True)
        probe["probe"] = records.probe_info("generalisation", ["WN-POS"], finetuned_on="WN-POS")
        records.write_record(str(run / "probe" / "record.json"), probe)
    assert report.main([str(tmp_path / "runs"), "--out", str(tmp_path / "report"), "--no-paper"]) == 0
    table2 = open(tmp_path / "report" / "table2.md").read()
    assert "WN-POS" in table2 and "93.0" in table2  # the max over the two seeds
