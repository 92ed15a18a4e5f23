"""Fetch the public files the pipelines read (GPT-2 BPE, model archives, GLUE, XNLI, CNN/DailyMail, Gigaword, Reddit
TIFU), listed with their URLs and SHA-256 in one manifest, ``rxf_repro/data/downloads.tsv``. Optional and separate from
processing: every pipeline reads local files, however you got them.

Each file is streamed into a temporary file beside its destination, hashed on the way, and renamed into place only
if its size and SHA-256 match; otherwise it is deleted and the run stops with an error. A file that is already there
is verified, not fetched again (so you can also put a file there by hand, e.g. one a browser downloaded, and let
this check it). The checksums are those a public reference publishes (the manifest says which); where none is
published the manifest says ``-`` and the entry is refused unless ``--allow-unverified``: its SHA-256 is then
recorded in ``DEST_DIR/checksums.local.tsv`` on first download (trust on first use) and checked on every later run.
Google Drive's "can't scan this file for viruses" page is followed through its download form. Standard library
only: no fairseq or torch needed.
"""

import argparse
import hashlib
import html.parser
import os
import re
import sys
import tempfile
import threading
import time
import urllib.error
import urllib.parse
import urllib.request
from concurrent.futures import FIRST_EXCEPTION, ThreadPoolExecutor, wait
from dataclasses import dataclass
from typing import Dict, List, Optional, Sequence, Tuple

from rxf_repro import outputs
from rxf_repro.cli import positive_int

HERE = os.path.dirname(os.path.abspath(__file__))
MANIFEST = os.path.join(HERE, "downloads.tsv")
LOCAL_CHECKSUMS = "checksums.local.tsv"
CHUNK = 1 << 20
USER_AGENT = "rxf-fairseq-download/1"


class DownloadError(Exception):
    """Printed as ``download: error: ...``, exit 1; nothing half-written is left."""


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
    names = set()
    with open(path, encoding="utf-8") as f:
        for number, line in enumerate(f, start=1):
            line = line.rstrip("\n")
            if not line.strip() or line.startswith("#"):
                continue
            where = f"{path}:{number}"
            fields = line.split("\t")
            if len(fields) != 7:
                raise DownloadError(
                    f"{where}: {len(fields)} tab-separated fields, expected 7 (name group dest sha256 bytes url source)"
                )
            name, group, dest, sha256, size, url, source = fields
            if name in names:
                raise DownloadError(f"{where}: duplicate name {name!r}")
            names.add(name)
            if sha256 != "-" and not re.fullmatch(r"[0-9a-f]{64}", sha256):
                raise DownloadError(f"{where}: sha256 {sha256!r} is not 64 lower-case hex digits or '-'")
            if size != "-" and not size.isdigit():
                raise DownloadError(f"{where}: bytes {size!r} is not a number or '-'")
            if os.path.isabs(dest) or os.path.normpath(dest).startswith("..") or dest != os.path.normpath(dest):
                raise DownloadError(f"{where}: destination {dest!r} must be a plain relative path")
            if urllib.parse.urlparse(url).scheme not in ("http", "https", "file"):
                raise DownloadError(f"{where}: url {url!r} is not http(s):// or file://")
            if sha256 != "-" and not source.strip():
                raise DownloadError(f"{where}: a checksum needs its source (last column)")
            entries.append(
                Entry(
                    name,
                    group,
                    dest,
                    None if sha256 == "-" else sha256,
                    None if size == "-" else int(size),
                    url,
                    source,
                )
            )
    return entries


def select(entries: List[Entry], wanted: Sequence[str]) -> List[Entry]:
    groups = sorted({e.group for e in entries})
    chosen: List[Entry] = []
    for what in wanted:
        matches = entries if what == "all" else [e for e in entries if what in (e.name, e.group)]
        if not matches:
            raise DownloadError(
                f"nothing called {what!r} in the manifest: give a group ({', '.join(groups)}), "
                "an entry name (--dry-run all lists them) or all"
            )
        chosen += [e for e in matches if e not in chosen]
    return chosen


def read_local_checksums(dest_dir: str) -> Dict[str, str]:
    path = os.path.join(dest_dir, LOCAL_CHECKSUMS)
    if not os.path.isfile(path):
        return {}
    with open(path, encoding="utf-8") as f:
        rows = [line.rstrip("\n").split("\t") for line in f if line.strip() and not line.startswith("#")]
    return {row[0]: row[1] for row in rows if len(row) >= 2}


_RECORD_LOCK = threading.Lock()  # --workers > 1: downloads finish concurrently
_STOP = threading.Event()  # set on a failure or Ctrl-C: downloads in other threads abort at their next chunk


def record_local_checksum(dest_dir: str, entry: Entry, digest: str, size: int) -> None:
    """Trust on first use: the SHA-256 of a file no public reference gives a checksum for, checked from now on."""
    with _RECORD_LOCK:
        records = read_local_checksums(dest_dir)
        records[entry.dest] = digest
        path = os.path.join(dest_dir, LOCAL_CHECKSUMS)
        with open(path + ".tmp", "w", encoding="utf-8") as f:
            f.write(
                "# dest\tsha256, recorded on first download (no published checksum): see rxf_repro/data/downloads.tsv\n"
            )
            f.writelines(f"{dest}\t{sha}\n" for dest, sha in sorted(records.items()))
        os.replace(path + ".tmp", path)
    log(f"[{entry.name}] recorded SHA-256 {digest} ({size} bytes) in {path}")


def log(message: str) -> None:
    print(message, file=sys.stderr, flush=True)


class _DownloadForm(html.parser.HTMLParser):
    """The download form (or ``confirm=`` link) of Google Drive's warning page for files it cannot virus-scan."""

    def __init__(self) -> None:
        super().__init__()
        self.action: Optional[str] = None
        self.inputs: Dict[str, str] = {}
        self.confirm_link: Optional[str] = None
        self._in_form = False

    def handle_starttag(self, tag, attrs):
        attrs = dict(attrs)
        if tag == "form" and attrs.get("id") == "download-form":
            self.action, self._in_form = attrs.get("action"), True
        elif tag == "input" and self._in_form and attrs.get("name"):
            self.inputs[attrs["name"]] = attrs.get("value") or ""
        elif tag == "a" and "confirm=" in (attrs.get("href") or "") and self.confirm_link is None:
            self.confirm_link = attrs["href"]

    def handle_endtag(self, tag):
        if tag == "form":
            self._in_form = False

    def target(self, base: str) -> Optional[str]:
        if self.action:
            return urllib.parse.urljoin(base, self.action) + "?" + urllib.parse.urlencode(self.inputs)
        return urllib.parse.urljoin(base, self.confirm_link) if self.confirm_link else None


def _open(url: str):
    request = urllib.request.Request(url, headers={"User-Agent": USER_AGENT})
    try:
        return urllib.request.urlopen(request, timeout=60)
    except urllib.error.HTTPError as error:
        raise DownloadError(f"{url}: HTTP {error.code} {error.reason}") from None
    except (urllib.error.URLError, OSError) as error:
        raise DownloadError(f"{url}: {getattr(error, 'reason', error)}") from None


def fetch(entry: Entry, part: str) -> Tuple[str, int, bool]:
    """Stream ``entry.url`` into ``part``: (sha256, bytes, whether the server sent an HTML page)."""
    response = _open(entry.url)
    is_html = response.headers.get_content_type() == "text/html" and not entry.dest.endswith((".html", ".htm"))
    if is_html:  # Google Drive's warning page: follow its form once
        page = response.read(1 << 20)
        response.close()
        form = _DownloadForm()
        form.feed(page.decode("utf-8", "replace"))
        follow = form.target(response.geturl())
        if follow:
            log(f"[{entry.name}] following the download form of {urllib.parse.urlparse(follow).netloc}")
            response = _open(follow)
            is_html = response.headers.get_content_type() == "text/html"
        else:
            response = None
    digest, size, started, reported = hashlib.sha256(), 0, time.time(), 0
    with open(part, "wb") as out:
        if response is None:
            out.write(page)
            digest.update(page)
            size = len(page)
        else:
            with response:
                while True:
                    if _STOP.is_set():
                        raise DownloadError(f"{entry.name}: interrupted")
                    chunk = response.read(CHUNK)
                    if not chunk:
                        break
                    out.write(chunk)
                    digest.update(chunk)
                    size += len(chunk)
                    if size - reported >= 64 * CHUNK:
                        reported = size
                        total = f" of {entry.size / 1e6:.0f}" if entry.size else ""
                        log(f"[{entry.name}] {size / 1e6:.0f}{total} MB, {time.time() - started:.0f} s")
    return digest.hexdigest(), size, is_html


def sha256_file(path: str) -> str:
    digest = hashlib.sha256()
    with open(path, "rb") as f:
        for chunk in iter(lambda: f.read(CHUNK), b""):
            if _STOP.is_set():
                raise DownloadError(f"{path}: interrupted")
            digest.update(chunk)
    return digest.hexdigest()


def unverified_refusal(entry: Entry, dest_dir: str) -> DownloadError:
    return DownloadError(
        f"{entry.name}: no published checksum for {entry.url} ({entry.source}); pass "
        f"--allow-unverified to fetch it anyway: its SHA-256 is then recorded in "
        f"{os.path.join(dest_dir, LOCAL_CHECKSUMS)} and checked on every later run"
    )


def download(entry: Entry, dest_dir: str, allow_unverified: bool) -> str:
    """Fetch one entry (or verify the file already there); returns what was done."""
    path = os.path.join(dest_dir, entry.dest)
    recorded = read_local_checksums(dest_dir).get(entry.dest)
    expected = entry.sha256 or recorded
    source = entry.source if entry.sha256 else f"recorded in {os.path.join(dest_dir, LOCAL_CHECKSUMS)}"
    if os.path.exists(path):
        digest = sha256_file(path)
        if expected and digest != expected:
            raise DownloadError(
                f"{path} is already there but its SHA-256 is {digest}, expected {expected} ({source}): "
                "delete it to download it again"
            )
        if expected:
            return "already there, verified"
        if not allow_unverified:
            raise unverified_refusal(entry, dest_dir)
        record_local_checksum(dest_dir, entry, digest, os.path.getsize(path))
        return "already there, unverified: SHA-256 recorded"
    if not expected and not allow_unverified:
        raise unverified_refusal(entry, dest_dir)
    os.makedirs(os.path.dirname(path) or ".", exist_ok=True)
    fd, part = tempfile.mkstemp(prefix=f".{os.path.basename(path)}.part-", dir=os.path.dirname(path) or ".")
    os.close(fd)
    try:
        log(f"[{entry.name}] {entry.url}")
        digest, size, is_html = fetch(entry, part)
        wrong = []
        if entry.size is not None and size != entry.size:
            wrong.append(f"{size} bytes, expected {entry.size}")
        if expected and digest != expected:
            wrong.append(f"SHA-256 {digest}, expected {expected}")
        if wrong:
            hint = (
                " The server sent an HTML page, not the file (Google Drive's warning or quota page?): download it "
                f"in a browser to {path} and run this again to verify it."
                if is_html
                else ""
            )
            raise DownloadError(
                f"{entry.name}: checksum mismatch for {entry.url}: {'; '.join(wrong)} ({source}); "
                f"nothing was written.{hint}"
            )
        os.chmod(part, outputs.file_mode())  # mkstemp's 0600 would hide the file from the group
        os.replace(part, path)
    finally:
        if os.path.exists(part):
            os.remove(part)
    if not expected:
        record_local_checksum(dest_dir, entry, digest, size)
        return f"downloaded ({size} bytes), unverified: SHA-256 recorded"
    return f"downloaded ({size} bytes), verified"


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
        futures = [pool.submit(one, entry) for entry in entries]
        try:
            done, _ = wait(futures, return_when=FIRST_EXCEPTION)
        finally:  # a failure or Ctrl-C left some undone: those running delete their partial files and end at once
            if not all(f.done() for f in futures):
                _STOP.set()
                for future in futures:
                    future.cancel()
        failed = [f for f in futures if f in done and f.exception() is not None]
        if failed:
            raise failed[0].exception()


def main(argv: Optional[Sequence[str]] = None) -> int:
    parser = argparse.ArgumentParser(
        prog="preprocess/download.sh", description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter
    )
    parser.add_argument("dest_dir", help="where the files go (each under the destination the manifest gives)")
    parser.add_argument("what", nargs="+", help="groups or entry names of the manifest, or all")
    parser.add_argument("--dry-run", action="store_true", help="list URLs, destinations and checksums; fetch nothing")
    parser.add_argument(
        "--allow-unverified",
        action="store_true",
        help="fetch entries without a published checksum (their SHA-256 is recorded on first use)",
    )
    parser.add_argument("--manifest", default=MANIFEST, help="the manifest (default: rxf_repro/data/downloads.tsv)")
    parser.add_argument("--workers", type=positive_int, default=1, help="files fetched at the same time")
    args = parser.parse_args(argv)
    try:
        entries = select(read_manifest(args.manifest), args.what)
        if args.dry_run:
            recorded = read_local_checksums(args.dest_dir)
            for entry in entries:
                path = os.path.join(args.dest_dir, entry.dest)
                check = (
                    f"sha256 {entry.sha256}"
                    if entry.sha256
                    else f"sha256 {recorded[entry.dest]} (recorded)"
                    if entry.dest in recorded
                    else "UNVERIFIED: no published checksum, needs --allow-unverified"
                )
                there = " [already there]" if os.path.exists(path) else ""
                print(f"{entry.name}\t{entry.url}\t-> {path}\t{check}{there}")
            return 0
        download_all(entries, args.dest_dir, args.allow_unverified, args.workers)
    except DownloadError as error:
        print(f"download: error: {error}", file=sys.stderr)
        return 1
    except KeyboardInterrupt:
        print("download: interrupted; nothing half-written was kept", file=sys.stderr)
        return 130
    return 0


if __name__ == "__main__":
    sys.exit(main())
