"""``rxf-rouge REFERENCE SUMMARY``: the command line, with files2rouge's option spellings kept as aliases."""

import argparse
import os
import re
import sys
import time
from typing import Sequence

from rxf_repro import cli
from rxf_repro.outputs import write_file_atomically
from rxf_repro.rouge.documents import DEFAULT_MAX_LINE_BYTES, read_documents
from rxf_repro.rouge.perl import DEFAULT_ROUGE_N, perl_rouge
from rxf_repro.rouge.ptb import ptb_tokenize
from rxf_repro.rouge.python_backend import format_report, python_rouge

REPORT_LINE = re.compile(r"-+|1 ROUGE-\S+ .*|")


def is_report(path: str) -> bool:
    """Whether ``path`` holds a ROUGE-1.5.5 report (ours or ROUGE's) or nothing: what ``--save-to`` may replace
    without ``--overwrite``."""
    try:
        with open(path, "rb") as f:
            text = f.read((1 << 20) + 1).decode("utf-8")  # a report is a few KB
    except (OSError, UnicodeDecodeError):
        return False
    return len(text) <= 1 << 20 and all(REPORT_LINE.fullmatch(line) for line in text.split("\n"))


def check_save_to(path: str, inputs: Sequence[str], *, overwrite: bool) -> None:
    """Refuse, before any scoring, a report file that would destroy something or could not be written. A missing
    folder is created (as ``mkdir -p`` would), when its nearest existing ancestor is writable."""
    where = f"--save-to {path}"
    if os.path.islink(path):
        raise cli.UserError(f"{where}: is a symbolic link (to {os.readlink(path)}); give the file itself")
    if os.path.isdir(path) or path.endswith(os.sep):
        what = "is a folder" if os.path.isdir(path) else f"ends with {os.sep}"
        raise cli.UserError(f"{where}: {what}; give the report's file name, e.g. {os.path.join(path, 'rouge.txt')}")
    if os.path.exists(path):
        for name in inputs:
            if os.path.exists(name) and os.path.samefile(path, name):
                raise cli.UserError(f"{where}: is the input {name}; choose another file")
        if not overwrite and not is_report(path):
            raise cli.UserError(
                f"{where}: exists and is not an earlier ROUGE report; choose another file, or pass --overwrite to "
                "replace it"
            )
    existing = os.path.dirname(os.path.abspath(path))
    while not os.path.lexists(existing):
        existing = os.path.dirname(existing)
    if not os.path.isdir(existing):
        raise cli.UserError(f"{where}: {existing} is not a folder, so the report's folder cannot be made")
    if not os.access(existing, os.W_OK | os.X_OK):
        raise cli.UserError(f"{where}: cannot write in {existing} (permission denied)")


def build_parser() -> argparse.ArgumentParser:
    """The project's spelling of each option first, files2rouge's spellings as aliases."""
    parser = argparse.ArgumentParser(
        prog="rxf-rouge",
        description="ROUGE between two files, one document per line, as files2rouge (REFERENCE first, then SUMMARY; "
        "fairseq's BART README passes them the other way round). Files are UTF-8; lines end at '\\n' (or '\\r\\n') "
        "only. files2rouge's option spellings are accepted.",
    )
    add = parser.add_argument
    add("reference", help="references, one document per line")
    add("summary", help="system summaries, one document per line")
    backends = "perl (default): the official ROUGE-1.5.5, as files2rouge runs it (needs Perl's XML::Parser); python: "
    backends += "Google's rouge-score, close to but not equal to perl (docs/rouge.md: how close)"
    add("--backend", choices=["perl", "python"], default="perl", help=backends)
    add("-v", "--verbose", action="store_true", help="print the ROUGE-1.5.5 command (perl)")
    rouge_n = dict(
        type=int, choices=range(1, 10), default=DEFAULT_ROUGE_N, metavar="N", help="largest n-gram size (1-9)"
    )
    add("--rouge-n", "-n", "--rouge_n", **rouge_n)
    add("-a", "--args", help="ROUGE-1.5.5 arguments replacing '-c 95 -r 1000 -n 2 -a' (perl; -e DATA before, -m after)")
    save = "also write the report to FILE, atomically, making missing folders; an existing FILE only if it holds an "
    save += "earlier ROUGE report, or with --overwrite"
    add("--save-to", "-s", "--saveto", dest="saveto", metavar="FILE", help=save)
    add("--overwrite", action="store_true", help="let --save-to replace a file that is not an earlier ROUGE report")
    add("-e", "--eos", default=".", help="end-of-sentence token (default '.')")
    add("-m", "--stemming", action="store_true", help="refused, as by files2rouge: stemming is the default")
    add("--no-rouge-l", "-nol", "--no_rouge_l", action="store_true", help="do not compute ROUGE-L")
    add("--no-stemming", "-nm", "--no_stemming", action="store_true", help="switch Porter stemming off")
    for what in ("reference", "summary"):
        skip = f"skip documents whose {what} is empty, instead of refusing the files"
        add(f"--ignore-empty-{what}", f"-i{what[0]}", f"--ignore_empty_{what}", action="store_true", help=skip)
    limit = f"refuse a longer line (default {DEFAULT_MAX_LINE_BYTES}; 0: no limit): ROUGE-L's memory grows with the "
    limit += "square of a sentence's length"
    add("--max-line-bytes", type=cli.non_negative_int, default=DEFAULT_MAX_LINE_BYTES, metavar="BYTES", help=limit)
    add("--n-samples", type=cli.positive_int, default=1000, help="bootstrap resamples (python backend; default 1000)")
    add("-q", "--quiet", action="store_true", help="no progress lines on stderr")
    add("--ptb-tokenize", action="store_true", help="PTB-tokenise both files first (CoreNLP's PTBTokenizer's stand-in)")
    return parser


def main(argv=None) -> int:
    parser = build_parser()
    args = parser.parse_args(argv)
    if args.stemming:
        parser.error("-m/--stemming: stemming is the default (as in files2rouge); --no-stemming/-nm switches it off")
    if args.args and args.backend == "python":
        parser.error("-a/--args passes ROUGE-1.5.5 options: only with --backend perl")
    if args.args and (args.rouge_n != DEFAULT_ROUGE_N or args.no_rouge_l):
        parser.error("--rouge-n/-n and --no-rouge-l/-nol cannot be combined with -a/--args (as in files2rouge)")
    return cli.tool_main("rxf-rouge", lambda: score(args), interrupted="interrupted; nothing was written")


def score(args: argparse.Namespace) -> None:
    started = time.time()
    if args.saveto:
        check_save_to(args.saveto, (args.reference, args.summary), overwrite=args.overwrite)
    documents, skipped = read_documents(
        args.reference,
        args.summary,
        ignore_empty_reference=args.ignore_empty_reference,
        ignore_empty_summary=args.ignore_empty_summary,
        max_line_bytes=args.max_line_bytes,
    )
    if args.ptb_tokenize:
        documents = [(i, ptb_tokenize(ref), ptb_tokenize(summ)) for i, ref, summ in documents]
    if not args.quiet:
        note = f" ({len(skipped)} skipped as empty: lines {skipped[:10]}...)" if skipped else ""
        print(f"Scoring {len(documents)} documents with the {args.backend} backend{note}", file=sys.stderr)
    common = dict(stemming=not args.no_stemming, rouge_n=args.rouge_n, rouge_l=not args.no_rouge_l)
    if args.backend == "perl":
        report = perl_rouge(documents, args.eos, rouge_args=args.args, verbose=args.verbose, **common)
    else:
        report = format_report(python_rouge(documents, args.eos, n_samples=args.n_samples, **common))
    if args.saveto:
        try:
            write_file_atomically(args.saveto, report)
        except OSError as error:
            raise cli.UserError(f"--save-to {args.saveto}: cannot write it ({error.strerror})") from None
    print(report, end="")
    if not args.quiet:
        print(f"Elapsed time: {time.time() - started:.3f} seconds", file=sys.stderr)
