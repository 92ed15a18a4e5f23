"""rxf_repro.outputs: what every folder-writing command relies on."""

import json
import os
import subprocess

import pytest

from rxf_repro import outputs
from rxf_repro.cli import UserError


def dead_pid() -> int:
    proc = subprocess.Popen(["true"])
    proc.wait()
    return proc.pid


def build(dest, text="new", **kwargs):
    with outputs.output_folder(str(dest), "tool-a", "kind-a", **kwargs) as tmp:
        (open(os.path.join(tmp, "result.txt"), "w")).write(text)


def leftovers(parent):
    return sorted(n for n in os.listdir(parent) if ".tmp-" in n or ".old-" in n)


def test_a_new_folder_gets_its_content_and_the_marker(tmp_path):
    build(tmp_path / "out")
    assert (tmp_path / "out" / "result.txt").read_text() == "new"
    assert outputs.owner(str(tmp_path / "out"))["tool"] == "tool-a" and leftovers(tmp_path) == []


def test_an_earlier_output_of_the_same_tool_and_kind_is_replaced_whole(tmp_path):
    build(tmp_path / "out", "old")
    (tmp_path / "out" / "stale.txt").write_text("from the first run")
    build(tmp_path / "out", "new")
    assert sorted(os.listdir(tmp_path / "out")) == [outputs.MARKER, "result.txt"]
    assert (tmp_path / "out" / "result.txt").read_text() == "new" and leftovers(tmp_path) == []


@pytest.mark.parametrize("marker", [None, {"tool": "tool-b", "kind": "kind-a"}, {"tool": "tool-a", "kind": "kind-b"}])
def test_a_users_folder_or_another_tools_output_is_refused_and_left_intact(tmp_path, marker):
    (tmp_path / "out").mkdir()
    (tmp_path / "out" / "mine.txt").write_text("precious")
    (tmp_path / "out" / "summary.json").write_text("{}")  # looking like a pipeline's output is not enough
    if marker:
        (tmp_path / "out" / outputs.MARKER).write_text(json.dumps(marker))
    with pytest.raises(UserError, match="pass --overwrite"):
        build(tmp_path / "out")
    assert (tmp_path / "out" / "mine.txt").read_text() == "precious" and leftovers(tmp_path) == []
    build(tmp_path / "out", overwrite=True)
    assert not (tmp_path / "out" / "mine.txt").exists()


def test_links_files_and_inputs_are_refused_before_any_work(tmp_path):
    (tmp_path / "real").mkdir()
    os.symlink(tmp_path / "real", tmp_path / "link")
    (tmp_path / "file").write_text("x")
    (tmp_path / "data").mkdir()
    (tmp_path / "data" / "in.tsv").write_text("x")
    for dest, inputs, message in (
        (tmp_path / "link", (), "is a symbolic link"),
        (tmp_path / "file", (), "exists and is not a folder"),
        (tmp_path / "data", (str(tmp_path / "data" / "in.tsv"),), "contains the input"),
    ):
        ran = []
        with pytest.raises(UserError, match=message):
            with outputs.output_folder(str(dest), "tool-a", "kind-a", inputs=inputs):
                ran.append(1)
        assert ran == []
    assert os.path.islink(tmp_path / "link") and (tmp_path / "file").read_text() == "x"


def test_a_failure_inside_leaves_the_old_output_and_no_temporary_folder(tmp_path):
    build(tmp_path / "out", "old")
    with pytest.raises(RuntimeError):
        with outputs.output_folder(str(tmp_path / "out"), "tool-a", "kind-a") as tmp:
            open(os.path.join(tmp, "result.txt"), "w").write("half")
            raise RuntimeError("the work failed")
    assert (tmp_path / "out" / "result.txt").read_text() == "old" and leftovers(tmp_path) == []


def test_a_kill_between_the_two_renames_leaves_the_old_output_which_the_next_run_puts_back(tmp_path):
    build(tmp_path / "out", "old")
    aside = tmp_path / f".out.old-{dead_pid()}-abc"
    os.rename(tmp_path / "out", aside)  # killed here: no "out", the old one whole beside it
    (tmp_path / f".out.tmp-{dead_pid()}-xyz").mkdir()  # and a half-built new one
    outputs.clean_leftovers(str(tmp_path / "out"))
    assert (tmp_path / "out" / "result.txt").read_text() == "old" and leftovers(tmp_path) == []


def test_leftovers_of_killed_runs_go_but_a_running_ones_stay(tmp_path):
    (tmp_path / f".out.tmp-{dead_pid()}-a").mkdir()
    (tmp_path / f".out.old-{dead_pid()}-b").mkdir()
    live = tmp_path / f".out.tmp-{os.getppid()}-c"  # the test runner's parent: alive
    live.mkdir()
    (tmp_path / ".other.tmp-1-d").mkdir()  # another destination's: not ours to touch
    build(tmp_path / "out")
    assert leftovers(tmp_path) == [".other.tmp-1-d", live.name]


def test_an_old_folder_that_cannot_be_deleted_is_cleaned_up_by_the_next_run(tmp_path, monkeypatch):
    build(tmp_path / "out", "old")
    real_rmtree = outputs.shutil.rmtree
    monkeypatch.setattr(outputs.shutil, "rmtree", lambda path, ignore_errors=False: None)
    build(tmp_path / "out", "new")  # the delete of the old folder "fails": the new output is in place anyway
    assert (tmp_path / "out" / "result.txt").read_text() == "new" and len(leftovers(tmp_path)) == 1
    monkeypatch.setattr(outputs.shutil, "rmtree", real_rmtree)
    # the process that left it is this one (alive), so make it look like a killed run's
    (name,) = leftovers(tmp_path)
    os.rename(tmp_path / name, tmp_path / name.replace(f"-{os.getpid()}-", f"-{dead_pid()}-"))
    build(tmp_path / "out", "newer")
    assert leftovers(tmp_path) == [] and (tmp_path / "out" / "result.txt").read_text() == "newer"


def test_write_file_atomically_replaces_whole_files(tmp_path):
    outputs.write_file_atomically(str(tmp_path / "a" / "r.json"), "1\n")
    outputs.write_file_atomically(str(tmp_path / "a" / "r.json"), "2\n")
    assert (tmp_path / "a" / "r.json").read_text() == "2\n" and os.listdir(tmp_path / "a") == ["r.json"]


def test_a_parent_folder_we_cannot_write_in_is_one_line_before_any_work(read_only_folder):
    ran = []
    with pytest.raises(UserError, match=r"cannot write in .*read-only \(permission denied\)"):
        with outputs.output_folder(str(read_only_folder / "out"), "tool-a", "kind-a", flag="--out"):
            ran.append(1)
    assert ran == []
