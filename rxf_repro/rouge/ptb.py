"""PTB tokenisation, BART's recipe's first step, in place of CoreNLP's PTBTokenizer (on no package registry): NLTK's
Treebank tokenizer per sentence, sentences found so that an inner final period is split off ("now . He") while
abbreviations and initials keep theirs ("Mr.", "U.S.", "p.m.")."""

import argparse
import os
import re
import sys
from typing import List

from rxf_repro import cli
from rxf_repro.rouge.documents import decode_lines

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
        period = line[match.start() - 1] == "." and not match.group(1)  # no quote or bracket after it
        if period and _ends_with_abbreviation(line[start : match.start()]):
            continue
        sentences.append(line[start : match.end(1)])
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

    def tokenize() -> None:
        # bytes in and out: the locale's encoding (ASCII under LANG=C) must not decide what is text
        texts = decode_lines(sys.stdin.buffer, "<stdin>")
        try:
            for text in texts:
                sys.stdout.buffer.write((ptb_tokenize(text) + "\n").encode("utf-8"))
            sys.stdout.buffer.flush()
        except BrokenPipeError:  # e.g. "| head": the reader has what it wanted
            os.dup2(os.open(os.devnull, os.O_WRONLY), sys.stdout.fileno())

    return cli.tool_main("rxf-ptb-tokenize", tokenize)
