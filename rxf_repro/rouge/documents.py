"""Reading the two files the files2rouge way: UTF-8, one document per ``\\n``-ended line, sentences split at EOS."""

import os
from typing import BinaryIO, List, Tuple

from rxf_repro.cli import UserError

# ROUGE-L's memory grows with the square of a sentence's length; docs/rouge.md ("Size guard") says why 32 KiB.
DEFAULT_MAX_LINE_BYTES = 32 * 1024


def decode_lines(f: BinaryIO, where: str, max_line_bytes: int = 0) -> List[str]:
    """The UTF-8 lines of ``f``, split at ``\\n`` only: a ``\\r\\n`` ending counts as one, a lone ``\\r`` stays
    text (universal newlines would make it a line break and shift every later document against its partner).
    A line longer than ``max_line_bytes`` (0: no limit) is refused before it is read whole."""
    lines: List[str] = []
    offset = 0  # of the current line, for the byte offset of an encoding error
    while raw := f.readline(max_line_bytes + 2 if max_line_bytes else -1):  # the line, a "\r" and its "\n"
        line = raw[:-1] if raw.endswith(b"\n") else raw
        line = line[:-1] if line.endswith(b"\r") else line
        number = len(lines) + 1
        if max_line_bytes and len(line) > max_line_bytes:
            hint = (
                "if its lines end with '\\r' alone (old Mac), convert them with tr '\\r' '\\n'"
                if b"\r" in line
                else "check that the file has one document per line"
            )
            raise UserError(
                f"{where}:{number}: line longer than the limit of {max_line_bytes} bytes (ROUGE-L's memory grows "
                f"with the square of a sentence's length); {hint}, or raise the limit with --max-line-bytes N (0: none)"
            )
        try:
            lines.append(line.decode("utf-8"))
        except UnicodeDecodeError as error:
            raise UserError(
                f"{where}:{number}: not UTF-8 (byte 0x{line[error.start]:02x} at byte offset {offset + error.start}); "
                "convert it to UTF-8, e.g. iconv -f latin1 -t utf-8"
            ) from None
        offset += len(raw)
    return lines


def read_lines(path: str, max_line_bytes: int = DEFAULT_MAX_LINE_BYTES, name: str = "input") -> List[str]:
    if not os.path.isfile(path):
        raise UserError(f"{path}: {name} file not found; check the path")
    try:
        with open(path, "rb") as f:
            return decode_lines(f, path, max_line_bytes)
    except OSError as error:
        raise UserError(f"{path}: cannot read the {name} file ({error.strerror})") from None


def read_documents(
    reference: str,
    summary: str,
    *,
    ignore_empty_reference: bool = False,
    ignore_empty_summary: bool = False,
    max_line_bytes: int = DEFAULT_MAX_LINE_BYTES,
) -> Tuple[List[Tuple[int, str, str]], List[int]]:
    """``[(line_index, reference, summary)]`` (stripped lines) and the 1-based lines skipped, with files2rouge's
    rules: equal line counts; an empty reference or summary is an error unless ignored."""
    refs = read_lines(reference, max_line_bytes, "reference")
    summs = read_lines(summary, max_line_bytes, "summary")
    if len(refs) != len(summs):
        raise UserError(
            f"{summary}: {reference} has {len(refs)} lines but {summary} has {len(summs)}; one summary per "
            "reference line is needed (lines end at '\\n' only)"
        )
    if not refs:
        raise UserError(f"{reference}: the reference file is empty; give one document per line")
    documents, skipped = [], []
    for i, (ref, summ) in enumerate(zip(refs, summs)):
        ref, summ = ref.strip(), summ.strip()
        for text, path, flag, ignore in (
            (ref, reference, "-ir/--ignore-empty-reference", ignore_empty_reference),
            (summ, summary, "-is/--ignore-empty-summary", ignore_empty_summary),
        ):
            if text == "" and not ignore:
                raise UserError(f"{path}:{i + 1}: empty line (pass {flag} to skip such documents)")
        if ref and summ:
            documents.append((i, ref, summ))
        else:
            skipped.append(i + 1)
    if not documents:
        raise UserError(f"{summary}: no document left to score (every line has an empty reference or summary)")
    return documents, skipped


def split_sentences(line: str, eos: str) -> List[str]:
    """files2rouge's split, ``(" %s\\n" % eos).join(line.split(" %s" % eos))``, read back by pyrouge as
    ``text.split("\\n")`` (so a line ending in EOS yields a final empty sentence, as there)."""
    return f" {eos}\n".join(line.split(f" {eos}")).split("\n")
