"""Fetch the public files the pipelines read (GPT-2 BPE, model archives, GLUE, XNLI, CNN/DailyMail, Gigaword, Reddit
TIFU), listed with their URLs and SHA-256 in one manifest, ``rxf_repro/data/downloads.tsv``; every pipeline reads local
files, however you got them. A file is renamed into place only if its size and SHA-256 match; one already there is
verified, not fetched again. Entries without a published checksum (``-``) need ``--allow-unverified``: their SHA-256 is
then recorded in ``DEST_DIR/checksums.local.tsv`` and checked on every later run (trust on first use). Google Drive's
"can't scan this file for viruses" page is followed through its download form. See docs/data.md, "Downloading".
"""

import argparse
import html.parser
import os
import re
import shutil
import sys
import tempfile
import threading
import urllib.parse
import urllib.request
from concurrent.futures import ThreadPoolExecutor, as_completed
from dataclasses import dataclass
from typing import Dict, List, Optional, Sequence

import pooch
import requests
from tqdm import tqdm

from rxf_repro import cli, outputs
from rxf_repro.data.common import log

MANIFEST = os.path.join(os.path.dirname(os.path.abspath(__file__)), "downloads.tsv")
LOCAL_CHECKSUMS = "checksums.local.tsv"
USER_AGENT = "rxf-fairseq-download/1"  # the downloads name themselves, as they did before pooch
CHUNK = 1 << 20
_STOP = threading.Event()  # --workers: set on a failure or Ctrl-C, so that the other downloads end at their next chunk
_RECORD_LOCK = threading.Lock()  # --workers: downloads record their checksums concurrently


@dataclass(frozen=True)
class Entry:
    name: str
    group: str
    dest: str
    sha256: Optional[str]  # None: no published checksum
    size: Optional[int]
    url: str
    source: str


def read_manifest(path: str) -> List[Entry]:
    entries: List[Entry] = []
    with open(path, encoding="utf-8") as f:
        for number, line in enumerate(f, start=1):
            if not line.strip() or line.startswith("#"):
                continue
            where, fields = f"{path}:{number}", line.rstrip("\n").split("\t")
            if len(fields) != 7:
                raise cli.UserError(
                    f"{where}: {len(fields)} tab-separated fields, expected 7: name group dest sha256 bytes url source"
                )
            name, group, dest, sha256, size, url, source = fields
            if any(entry.name == name for entry in entries):
                raise cli.UserError(f"{where}: duplicate name {name!r}")
            if sha256 != "-" and not re.fullmatch(r"[0-9a-f]{64}", sha256):
                raise cli.UserError(f"{where}: sha256 {sha256!r} is not 64 lower-case hex digits or '-'")
            if size != "-" and not size.isdigit():
                raise cli.UserError(f"{where}: bytes {size!r} is not a number or '-'")
            if os.path.isabs(dest) or dest.startswith("..") or dest != os.path.normpath(dest):
                raise cli.UserError(f"{where}: destination {dest!r} must be a plain relative path")
            checksum = None if sha256 == "-" else sha256
            entries.append(Entry(name, group, dest, checksum, None if size == "-" else int(size), url, source))
    return entries


def select(entries: List[Entry], wanted: Sequence[str]) -> List[Entry]:
    chosen: List[Entry] = []
    for what in wanted:
        matches = entries if what == "all" else [e for e in entries if what in (e.name, e.group)]
        if not matches:
            groups = ", ".join(sorted({e.group for e in entries}))
            raise cli.UserError(
                f"nothing called {what!r} in the manifest: give a group ({groups}), an entry name "
                "(--dry-run all lists them) or all"
            )
        chosen += [e for e in matches if e not in chosen]
    return chosen


def read_local_checksums(dest_dir: str) -> Dict[str, str]:
    path = os.path.join(dest_dir, LOCAL_CHECKSUMS)
    if not os.path.isfile(path):
        return {}
    with open(path, encoding="utf-8") as f:
        return dict(line.rstrip("\n").split("\t")[:2] for line in f if "\t" in line and not line.startswith("#"))


def record_local_checksum(dest_dir: str, entry: Entry, digest: str) -> None:
    """Trust on first use: the SHA-256 of a file no public reference gives a checksum for, checked from now on."""
    path = os.path.join(dest_dir, LOCAL_CHECKSUMS)
    with _RECORD_LOCK:
        records = {**read_local_checksums(dest_dir), entry.dest: digest}
        rows = "".join(f"{dest}\t{sha256}\n" for dest, sha256 in sorted(records.items()))
        outputs.write_file_atomically(path, f"# dest\tsha256 recorded on first download: see downloads.tsv\n{rows}")
    log(f"[{entry.name}] recorded SHA-256 {digest} in {path}")


class _Progress(tqdm):
    """Once ``_STOP`` is set an update fails, so that a download in another thread ends at its next chunk."""

    def update(self, n=1):
        if _STOP.is_set():
            raise cli.UserError(f"{self.desc}: interrupted")
        return super().update(n)


def _get(entry: Entry, url: str, part: str) -> None:
    """``url`` into the file ``part``: pooch's HTTP downloader (requests), or a copy of a local file."""
    with open(part, "wb") as f, _Progress.wrapattr(f, "write", entry.size, desc=entry.name, delay=1) as out:
        try:
            if url.startswith("file:"):
                with urllib.request.urlopen(url) as response:
                    shutil.copyfileobj(response, out, CHUNK)
            else:
                pooch.HTTPDownloader(chunk_size=CHUNK, timeout=60, headers={"User-Agent": USER_AGENT})(url, out, None)
        except requests.HTTPError as error:
            response = error.response
            raise cli.UserError(f"{entry.name}: {url}: HTTP {response.status_code} {response.reason}") from None
        except OSError as error:  # requests' errors are OSErrors too
            raise cli.UserError(f"{entry.name}: {url}: {getattr(error, 'reason', error)}") from None


class _DownloadForm(html.parser.HTMLParser):
    """The download form of Google Drive's "can't scan this file for viruses" page: its action and its inputs."""

    action: Optional[str] = None
    inside = False

    def __init__(self, page: str) -> None:
        super().__init__()
        self.inputs: Dict[str, str] = {}
        self.feed(page)

    def handle_starttag(self, tag, attrs):
        attrs = dict(attrs)
        if tag == "form" and attrs.get("id") == "download-form":
            self.action, self.inside = attrs.get("action"), True
        elif tag == "input" and self.inside and attrs.get("name"):
            self.inputs[attrs["name"]] = attrs.get("value") or ""

    def handle_endtag(self, tag):
        self.inside = self.inside and tag != "form"


def _web_page(path: str) -> str:
    """The text of the file at ``path`` if it is a web page (what a server sends instead of a file), else ""."""
    if os.path.getsize(path) > CHUNK:
        return ""
    with open(path, "rb") as f:
        text = f.read().decode("utf-8", "replace")
    return text if text.lstrip()[:15].lower().startswith(("<!doctype html", "<html")) else ""


def download(entry: Entry, dest_dir: str, allow_unverified: bool) -> str:
    """Fetch one entry (or verify the file already there); returns what was done."""
    path = os.path.join(dest_dir, entry.dest)
    checksums = os.path.join(dest_dir, LOCAL_CHECKSUMS)
    expected = entry.sha256 or read_local_checksums(dest_dir).get(entry.dest)
    source = entry.source if entry.sha256 else f"recorded in {checksums}"
    if not expected and not allow_unverified:
        raise cli.UserError(
            f"{entry.name}: no published checksum for {entry.url} ({entry.source}); pass --allow-unverified to fetch "
            f"it anyway: its SHA-256 is then recorded in {checksums} and checked on every later run"
        )
    if os.path.exists(path):
        digest = pooch.file_hash(path)
        if expected and digest != expected:
            raise cli.UserError(
                f"{path} is already there but its SHA-256 is {digest}, expected {expected} ({source}): "
                "delete it to download it again"
            )
        if not expected:
            record_local_checksum(dest_dir, entry, digest)
        return "already there, " + ("verified" if expected else "unverified: SHA-256 recorded")
    log(f"[{entry.name}] {entry.url}")
    os.makedirs(os.path.dirname(path), exist_ok=True)
    fd, part = tempfile.mkstemp(prefix=f".{os.path.basename(path)}.part-", dir=os.path.dirname(path))
    os.close(fd)
    try:
        _get(entry, entry.url, part)
        form = _DownloadForm(_web_page(part))
        if form.action:  # Google Drive's warning page
            follow = urllib.parse.urljoin(entry.url, form.action) + "?" + urllib.parse.urlencode(form.inputs)
            log(f"[{entry.name}] following the download form of {urllib.parse.urlparse(follow).netloc}")
            _get(entry, follow, part)
        digest, size = pooch.file_hash(part), os.path.getsize(part)
        wrong = [] if entry.size in (None, size) else [f"{size} bytes, expected {entry.size}"]
        wrong += [f"SHA-256 {digest}, expected {expected}"] if expected and digest != expected else []
        if wrong:
            hint = " The server sent an HTML page, not the file (Google Drive's warning or quota page?): download it "
            hint += f"in a browser to {path} and run this again to verify it."
            raise cli.UserError(
                f"{entry.name}: checksum mismatch for {entry.url}: {'; '.join(wrong)} ({source}); "
                f"nothing was written.{hint if _web_page(part) else ''}"
            )
        os.chmod(part, outputs.file_mode())  # mkstemp's 0600 would hide the file from the group
        os.replace(part, path)
    finally:
        if os.path.exists(part):
            os.remove(part)
    if not expected:
        record_local_checksum(dest_dir, entry, digest)
    return f"downloaded ({size} bytes), " + ("verified" if expected else "unverified: SHA-256 recorded")


def download_all(entries: List[Entry], dest_dir: str, allow_unverified: bool, workers: int) -> None:
    """Every entry, ``workers`` at a time. The first failure (or Ctrl-C) stops the others, those not yet started and
    those running, which delete their partial files; it is raised once they have ended."""

    def one(entry: Entry) -> None:
        log(f"[{entry.name}] {download(entry, dest_dir, allow_unverified)}: {os.path.join(dest_dir, entry.dest)}")

    if workers == 1:  # in this thread, so that Ctrl-C stops the download at once
        for entry in entries:
            one(entry)
        return
    _STOP.clear()
    with ThreadPoolExecutor(max_workers=workers) as pool:
        try:
            for future in as_completed([pool.submit(one, entry) for entry in entries]):
                future.result()
        except BaseException:
            _STOP.set()
            pool.shutdown(cancel_futures=True)
            raise


def dry_run(entries: List[Entry], dest_dir: str) -> None:
    recorded = read_local_checksums(dest_dir)
    for entry in entries:
        path = os.path.join(dest_dir, entry.dest)
        check = f"sha256 {entry.sha256}" if entry.sha256 else f"sha256 {recorded.get(entry.dest)} (recorded)"
        if not entry.sha256 and entry.dest not in recorded:
            check = "UNVERIFIED: no published checksum, needs --allow-unverified"
        print(f"{entry.name}\t{entry.url}\t-> {path}\t{check}{' [already there]' if os.path.exists(path) else ''}")


def main(argv: Optional[Sequence[str]] = None) -> int:
    parser = argparse.ArgumentParser(
        prog="preprocess/download.sh",
        usage="%(prog)s DEST_DIR WHAT... [--dry-run] [--allow-unverified] [--workers N] [--manifest FILE]",
        description=__doc__,
        formatter_class=argparse.RawDescriptionHelpFormatter,
    )
    parser.add_argument("dest_dir", metavar="DEST_DIR", help="where the files go, each at its manifest destination")
    groups = "gpt2_bpe roberta bart xlmr glue xnli cnn_dm gigaword reddit_tifu"
    parser.add_argument("what", metavar="WHAT", nargs="+", help=f"all, a group ({groups}) or an entry name")
    parser.add_argument("--dry-run", action="store_true", help="list URLs, destinations and checksums; fetch nothing")
    parser.add_argument(
        "--allow-unverified",
        action="store_true",
        help="fetch the entries without a published checksum (model archives, GPT-2 dict.txt)",
    )
    parser.add_argument("--workers", metavar="N", type=cli.positive_int, default=1, help="files fetched at a time")
    parser.add_argument("--manifest", metavar="FILE", default=MANIFEST, help="default: rxf_repro/data/downloads.tsv")
    args = parser.parse_args(argv)

    def body() -> None:
        entries = select(read_manifest(args.manifest), args.what)
        if args.dry_run:
            return dry_run(entries, args.dest_dir)
        download_all(entries, args.dest_dir, args.allow_unverified, args.workers)

    return cli.tool_main("download", body, interrupted="interrupted; nothing half-written was kept")


if __name__ == "__main__":
    sys.exit(main())
