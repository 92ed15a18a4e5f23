"""preprocess/download.sh offline: manifests pointing at file:// URLs and at a local HTTP server (good file, checksum
mismatch, unverified refusal, trust on first use, Google Drive's warning page), and the real manifest's checksums."""

import hashlib
import http.server
import os
import subprocess
import sys
import threading

import pytest

from rxf_repro.cli import UserError
from rxf_repro.data import download
from tests.helpers import REPO
from tests.pipelines import call_main

DOWNLOAD_SH = os.path.join(REPO, "preprocess", "download.sh")


GOOD = b"the real file \xf0\x9f\x93\xa6\n" * 1000
HEADER = "# name\tgroup\tdest\tsha256\tbytes\turl\tsource\n"


def sha(data: bytes) -> str:
    return hashlib.sha256(data).hexdigest()


def manifest(path, rows):
    path.write_text(HEADER + "".join("\t".join(map(str, row)) + "\n" for row in rows))
    return path


def run(dest, *args, manifest_path=None, script=False):
    """``preprocess/download.sh DEST ARGS... [--manifest FILE]``: its ``main`` in this process, or with ``script`` the
    shell script itself."""
    argv = [str(dest), *args, *(["--manifest", str(manifest_path)] if manifest_path else [])]
    if not script:
        return call_main(download.main, argv, "preprocess/download.sh")
    return subprocess.run(
        ["bash", DOWNLOAD_SH, *argv],
        stdout=subprocess.PIPE,
        stderr=subprocess.PIPE,
        text=True,
        env={**os.environ, "PYTHON": sys.executable},
    )


def leftovers(root):
    return [os.path.join(d, f) for d, _, files in os.walk(root) for f in files if ".part-" in f]


@pytest.fixture
def files(tmp_path):
    src = tmp_path / "served"
    src.mkdir()
    (src / "good.bin").write_bytes(GOOD)
    (src / "tampered.bin").write_bytes(GOOD.replace(b"real", b"fake"))
    url = (src / "good.bin").as_uri()
    rows = [
        ("good", "data", "data/good.bin", sha(GOOD), len(GOOD), url, "the test"),
        ("tampered", "data", "data/tampered.bin", sha(GOOD), len(GOOD), (src / "tampered.bin").as_uri(), "the test"),
        ("model", "models", "model.tar.gz", "-", "-", url, "none published"),
        ("missing", "data", "data/missing.bin", sha(GOOD), "-", (src / "nope.bin").as_uri(), "the test"),
    ]
    return src, manifest(tmp_path / "downloads.tsv", rows), tmp_path / "dest"


def test_good_file_is_verified_and_renamed_into_place(files):
    src, mf, dest = files
    proc = run(dest, "good", manifest_path=mf)
    assert proc.returncode == 0, proc.stderr
    assert (dest / "data" / "good.bin").read_bytes() == GOOD and not leftovers(dest)
    assert "[good] downloaded (19000 bytes), verified" in proc.stderr
    (src / "good.bin").unlink()  # a file already there is verified, not fetched again
    proc = run(dest, "good", manifest_path=mf)
    assert proc.returncode == 0 and "[good] already there, verified" in proc.stderr


def test_checksum_mismatch_leaves_nothing(files):
    _, mf, dest = files
    proc = run(dest, "tampered", manifest_path=mf)
    assert proc.returncode == 1
    assert "download: error: tampered: checksum mismatch for file://" in proc.stderr
    assert (
        f"SHA-256 {sha(GOOD.replace(b'real', b'fake'))}, expected {sha(GOOD)} (the test); nothing was written"
        in proc.stderr
    )
    assert not (dest / "data" / "tampered.bin").exists() and not leftovers(dest)


def test_a_wrong_file_already_there_is_an_error_and_left_alone(files):
    _, mf, dest = files
    (dest / "data").mkdir(parents=True)
    (dest / "data" / "good.bin").write_bytes(b"truncated")
    proc = run(dest, "good", manifest_path=mf)
    assert proc.returncode == 1 and "is already there but its SHA-256 is" in proc.stderr
    assert "delete it to download it again" in proc.stderr
    assert (dest / "data" / "good.bin").read_bytes() == b"truncated"


def test_unverified_is_refused_then_trusted_on_first_use(files):
    src, mf, dest = files
    proc = run(dest, "models", manifest_path=mf)
    assert proc.returncode == 1 and "model: no published checksum for file://" in proc.stderr
    assert "pass --allow-unverified" in proc.stderr and not dest.exists()
    proc = run(dest, "models", "--allow-unverified", manifest_path=mf)
    assert proc.returncode == 0, proc.stderr
    assert (dest / "model.tar.gz").read_bytes() == GOOD
    assert f"model.tar.gz\t{sha(GOOD)}" in (dest / "checksums.local.tsv").read_text()
    assert run(dest, "model", manifest_path=mf).returncode == 0  # verified against the record from now on
    (dest / "model.tar.gz").unlink()
    (src / "good.bin").write_bytes(b"changed upstream")
    proc = run(dest, "model", "--allow-unverified", manifest_path=mf)
    assert proc.returncode == 1 and "recorded in" in proc.stderr and "checksum mismatch" in proc.stderr
    assert not (dest / "model.tar.gz").exists() and not leftovers(dest)


def test_workers_fetch_side_by_side_and_a_failure_still_fails(files):
    src, mf, dest = files
    rows = [
        ("extra%d" % i, "many", f"data/extra{i}.bin", "-", "-", (src / "good.bin").as_uri(), "none published")
        for i in range(6)
    ]
    mf.write_text(mf.read_text() + "".join("\t".join(map(str, row)) + "\n" for row in rows))
    proc = run(dest, "good", "many", "--allow-unverified", "--workers", "3", manifest_path=mf)
    assert proc.returncode == 0, proc.stderr
    recorded = (dest / "checksums.local.tsv").read_text()  # written by concurrent downloads: every record kept
    assert all(f"data/extra{i}.bin\t{sha(GOOD)}" in recorded for i in range(6))
    assert (dest / "data" / "good.bin").read_bytes() == GOOD and not leftovers(dest)
    proc = run(dest, "tampered", "good", "--workers", "2", manifest_path=mf)
    assert proc.returncode == 1 and "tampered: checksum mismatch" in proc.stderr
    assert not (dest / "data" / "tampered.bin").exists() and not leftovers(dest)
    assert run(dest, "good", "--workers", "0", manifest_path=mf).returncode == 2


def test_a_stopped_download_leaves_nothing(files):
    """What --workers does to the downloads still running when another fails or Ctrl-C comes: they end at once."""
    src, mf, dest = files
    entry = [e for e in download.read_manifest(str(mf)) if e.name == "good"][0]
    download._STOP.set()
    try:
        with pytest.raises(UserError, match="good: interrupted"):
            download.download(entry, str(dest), False)
    finally:
        download._STOP.clear()
    assert not (dest / "data" / "good.bin").exists() and not leftovers(dest)


def test_dry_run_lists_urls_and_destinations_and_fetches_nothing(files):
    src, mf, dest = files
    proc = run(dest, "all", "--dry-run", manifest_path=mf)
    assert proc.returncode == 0 and not dest.exists()
    lines = proc.stdout.splitlines()
    assert lines[0] == f"good\t{(src / 'good.bin').as_uri()}\t-> {dest}/data/good.bin\tsha256 {sha(GOOD)}"
    assert lines[2].endswith("UNVERIFIED: no published checksum, needs --allow-unverified")


def test_missing_url_unknown_name_and_bad_manifest(files, tmp_path):
    _, mf, dest = files
    proc = run(dest, "missing", manifest_path=mf)
    assert proc.returncode == 1 and "nope.bin" in proc.stderr and not leftovers(dest)
    proc = run(dest, "glue2", manifest_path=mf)
    assert proc.returncode == 1 and "nothing called 'glue2' in the manifest: give a group (data, models)" in proc.stderr
    bad = manifest(tmp_path / "bad.tsv", [("x", "g", "x.bin", "abc", "-", "https://example.org/x", "somewhere")])
    proc = run(dest, "all", manifest_path=bad)
    assert proc.returncode == 1 and f"{bad}:2: sha256 'abc' is not 64 lower-case hex digits" in proc.stderr
    bad = manifest(tmp_path / "bad.tsv", [("x", "g", "../x.bin", "-", "-", "https://example.org/x", "")])
    assert "must be a plain relative path" in run(dest, "all", manifest_path=bad).stderr
    usage = subprocess.run(["bash", DOWNLOAD_SH], stderr=subprocess.PIPE, text=True)
    assert usage.returncode == 2 and usage.stderr.startswith("usage: preprocess/download.sh DEST_DIR WHAT")


class DriveLikeHandler(http.server.BaseHTTPRequestHandler):
    """/uc answers with Google Drive's warning page; its form leads to /download, which serves the file."""

    def do_GET(self):
        if self.path.startswith("/uc"):
            page = (
                '<html><body>Google Drive can\'t scan this file for viruses.<form id="download-form" '
                'action="/download" method="get"><input type="hidden" name="id" value="abc">'
                '<input type="hidden" name="confirm" value="t"><input type="submit" value="Download anyway">'
                "</form></body></html>"
            ).encode()
            self.reply(200, "text/html; charset=utf-8", page)
        elif self.path == "/download?id=abc&confirm=t":
            self.reply(200, "application/octet-stream", GOOD)
        elif self.path.startswith("/quota"):
            self.reply(200, "text/html", b"<html>Too many users have viewed or downloaded this file recently.</html>")
        else:
            self.reply(404, "text/plain", b"not found")

    def reply(self, code, content_type, body):
        self.send_response(code)
        self.send_header("Content-Type", content_type)
        self.send_header("Content-Length", str(len(body)))
        self.end_headers()
        self.wfile.write(body)

    def log_message(self, *args):
        pass


@pytest.fixture
def server():
    httpd = http.server.ThreadingHTTPServer(("127.0.0.1", 0), DriveLikeHandler)
    thread = threading.Thread(target=httpd.serve_forever, daemon=True)
    thread.start()
    yield f"http://127.0.0.1:{httpd.server_address[1]}"
    httpd.shutdown()
    httpd.server_close()


def test_http_drive_warning_page_quota_page_and_404(server, tmp_path):
    """The script itself, end to end (docs/data.md's download block says this test runs it against a local server);
    the other tests call the ``main`` it ``exec``s."""
    mf = manifest(
        tmp_path / "downloads.tsv",
        [
            ("drive", "d", "big.json", sha(GOOD), len(GOOD), f"{server}/uc?export=download&id=abc", "the test"),
            ("quota", "d", "q.json", sha(GOOD), "-", f"{server}/quota?id=abc", "the test"),
            ("gone", "d", "gone.json", sha(GOOD), "-", f"{server}/missing", "the test"),
        ],
    )
    dest = tmp_path / "dest"
    proc = run(dest, "drive", manifest_path=mf, script=True)
    assert proc.returncode == 0, proc.stderr
    assert "following the download form" in proc.stderr and (dest / "big.json").read_bytes() == GOOD
    proc = run(dest, "quota", manifest_path=mf, script=True)
    assert proc.returncode == 1 and "The server sent an HTML page, not the file" in proc.stderr
    proc = run(dest, "gone", manifest_path=mf, script=True)
    assert proc.returncode == 1 and "HTTP 404" in proc.stderr
    assert sorted(os.listdir(dest)) == ["big.json"]


def test_the_manifest_checksums_are_sourced_and_the_unverified_ones_are_known():
    entries = download.read_manifest(download.MANIFEST)
    unverified = {e.name for e in entries if e.sha256 is None}
    assert unverified == {"gpt2-dict.txt", "roberta.large", "bart.large", "xlmr.large"}
    for entry in entries:
        if entry.sha256:
            assert entry.source.startswith(("tensorflow/datasets", "huggingface/datasets", "openai/tiktoken"))
    groups = {e.group for e in entries}
    assert groups == {"gpt2_bpe", "roberta", "bart", "xlmr", "glue", "xnli", "cnn_dm", "gigaword", "reddit_tifu"}
    usage = run("-", "--help")  # what the script's --help prints: it execs this main
    assert usage.returncode == 0 and all(group in usage.stdout for group in groups)
