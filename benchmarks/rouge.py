"""The numbers docs/rouge.md gives for ``rxf-rouge`` and ``rxf-ptb-tokenize``, measured here.

Each part makes its own inputs (a seeded synthetic vocabulary, or the GNU licenses every Debian machine
carries in /usr/share/common-licenses) and prints one JSON object on stdout; nothing is written unless
``--out FILE`` is given.

    python benchmarks/rouge.py timing             # 11,490 pairs (CNN/DM test size), both backends
    python benchmarks/rouge.py limit              # one worst-case pair at --max-line-bytes: time, peak memory
    python benchmarks/rouge.py limit --bytes 8192 --bytes 16384   # how it grows: with the square of the size
    python benchmarks/rouge.py ptb                # rxf-ptb-tokenize against sacremoses' Moses tokenizer
    python benchmarks/rouge.py gpl                # perl vs python, raw vs PTB-tokenised, on the GPL pairs

(``limit --bytes 65536`` would need about 10 GB with perl.) ``gpl`` scores the 60 GPL-3 paragraphs, each
against the most similar GPL-2 one, four ways: ``raw`` text, ``simple`` (punctuation split off by a regular
expression), and each of them PTB-tokenised (``+ptb``). ``ptb`` compares the 120 lines of those pairs.

Times are wall-clock seconds of the whole ``rxf-rouge`` command (start-up included) and its CPU seconds (user +
system, its ROUGE-1.5.5.pl child included: less sensitive to a busy machine); peak memory is the largest
resident set of the command or of its child (``wait4``'s ``ru_maxrss``). Also printed: the load average.
"""

import argparse
import difflib
import json
import os
import platform
import random
import re
import subprocess
import sys
import tempfile
import time
from typing import Dict, List, Sequence, Tuple

from rxf_repro import rouge as rxf_rouge

LICENSES = "/usr/share/common-licenses"
CNN_DM_TEST = 11490


def words(rng: random.Random, n: int) -> List[str]:
    """``n`` lowercase pseudo-words of 3 to 9 letters."""
    return ["".join(rng.choice("abcdefghijklmnopqrstuvwxyz") for _ in range(rng.randint(3, 9))) for _ in range(n)]


def synthetic_pairs(n: int, seed: int = 1) -> Tuple[List[str], List[str]]:
    """References of 4 sentences x 15 tokens, summaries of 3 x 19, half of each summary's words from its
    reference: the shape of CNN/DM's highlights and a model's summaries."""
    rng = random.Random(seed)
    vocab = words(rng, 5000)
    refs, summs = [], []
    for _ in range(n):
        ref = [rng.choices(vocab, k=15) for _ in range(4)]
        pool = [w for s in ref for w in s]
        summ = [[rng.choice(pool) if rng.random() < 0.5 else rng.choice(vocab) for _ in range(19)] for _ in range(3)]
        refs.append(" ".join(" ".join(s) + " ." for s in ref))
        summs.append(" ".join(" ".join(s) + " ." for s in summ))
    return refs, summs


def one_sentence_line(rng: random.Random, vocab: Sequence[str], size: int) -> str:
    """A line of exactly ``size`` bytes with no sentence end: ROUGE-L's worst case (one LCS over it all)."""
    out: List[str] = []
    length = -1
    while length + 1 + 9 < size:
        word = rng.choice(vocab)
        out.append(word)
        length += 1 + len(word)
    line = " ".join(out)
    return line + "x" * (size - len(line))


def run_rouge(reference: str, summary: str, *flags: str) -> Dict[str, float]:
    """Wall time and peak resident memory (MiB) of one ``rxf-rouge`` command, and its ROUGE-L F."""
    command = [sys.executable, "-m", "rxf_repro.rouge", reference, summary, "-q", *flags]
    with tempfile.TemporaryFile() as out, tempfile.TemporaryFile() as err:
        started = time.perf_counter()
        proc = subprocess.Popen(command, stdout=out, stderr=err)
        # wait4, not Popen.wait: its rusage covers the command and the children it waited for (perl)
        _, status, usage = os.wait4(proc.pid, 0)
        seconds = time.perf_counter() - started
        proc.returncode = os.waitstatus_to_exitcode(status)
        out.seek(0)
        err.seek(0)
        stdout, stderr = out.read().decode(), err.read().decode()
    if proc.returncode != 0:
        raise SystemExit(f"benchmarks/rouge.py: {' '.join(command)} failed (exit {proc.returncode}):\n{stderr}")
    scores = rxf_rouge.parse_report(stdout)
    return {
        "seconds": round(seconds, 2),
        "cpu_seconds": round(usage.ru_utime + usage.ru_stime, 2),
        "peak_mib": round(usage.ru_maxrss / 1024, 1),  # ru_maxrss: KiB
        "rouge_l_f": scores["ROUGE-L"]["F"][0] if "ROUGE-L" in scores else None,
    }


def write_pair(folder: str, refs: Sequence[str], summs: Sequence[str]) -> Tuple[str, str]:
    paths = os.path.join(folder, "ref.txt"), os.path.join(folder, "sum.txt")
    for path, lines in zip(paths, (refs, summs)):
        with open(path, "w", encoding="utf-8") as f:
            f.write("\n".join(lines) + "\n")
    return paths


def timing(args) -> dict:
    refs, summs = synthetic_pairs(args.documents)
    with tempfile.TemporaryDirectory() as tmp:
        pair = write_pair(tmp, refs, summs)
        return {backend: run_rouge(*pair, "--backend", backend) for backend in args.backend}


def limit(args) -> dict:
    rng = random.Random(1)
    vocab = words(rng, 5000)
    results = {}
    for size in args.bytes or [rxf_rouge.DEFAULT_MAX_LINE_BYTES]:
        ref = one_sentence_line(rng, vocab, size)
        # half of the summary's words are the reference's, in order: a long LCS, as for a near copy
        summ = " ".join(w if rng.random() < 0.5 else rng.choice(vocab) for w in ref.split())[:size]
        summ += "x" * (size - len(summ))
        with tempfile.TemporaryDirectory() as tmp:
            pair = write_pair(tmp, [ref], [summ])
            tokens = len(ref.split())
            results[str(size)] = {"tokens": tokens}
            for backend in args.backend:
                results[str(size)][backend] = run_rouge(*pair, "--backend", backend, "--max-line-bytes", str(size))
    return results


def gpl_paragraphs(name: str) -> List[str]:
    with open(os.path.join(LICENSES, name), encoding="utf-8") as f:
        paras = [re.sub(r"\s+", " ", p).strip() for p in f.read().split("\n\n")]
    return [p for p in paras if len(p.split()) > 25]


def gpl_pairs() -> Tuple[List[str], List[str]]:
    """60 GPL-3 paragraphs, each with the GPL-2 paragraph sharing most of its words (raw text)."""
    gpl3, gpl2 = gpl_paragraphs("GPL-3")[:60], gpl_paragraphs("GPL-2")
    summs = []
    for p in gpl3:
        seen = set(p.lower().split())
        summs.append(max(gpl2, key=lambda q: len(seen & set(q.lower().split())) / len(set(q.lower().split()))))
    return gpl3, summs


def simple_tokenise(text: str) -> str:
    """Punctuation split off by a regular expression (what the tests feed ROUGE)."""
    return " ".join(re.sub(r"([.,;:()\"?!])", r" \1 ", text).split())


def ptb(args) -> dict:
    from sacremoses import MosesTokenizer

    moses = MosesTokenizer(lang="en")
    refs, summs = gpl_pairs()
    lines = refs + summs
    aligned = ours_total = theirs_total = identical = 0
    for line in lines:
        ours = rxf_rouge.ptb_tokenize(line).split()
        theirs = moses.tokenize(line, escape=False)
        matcher = difflib.SequenceMatcher(None, ours, theirs, autojunk=False)
        aligned += sum(block.size for block in matcher.get_matching_blocks())
        ours_total += len(ours)
        theirs_total += len(theirs)
        identical += ours == theirs
    return {
        "lines": len(lines),
        "unique_lines": len(set(lines)),
        "our_tokens": ours_total,
        "moses_tokens": theirs_total,
        "aligned_tokens": aligned,
        "aligned_of_ours_pct": round(100 * aligned / ours_total, 1),
        "aligned_of_both_pct": round(100 * 2 * aligned / (ours_total + theirs_total), 1),
        "identical_lines": identical,
    }


def gpl(args) -> dict:
    refs, summs = gpl_pairs()
    variants = {
        "raw": (refs, summs),
        "simple": ([simple_tokenise(r) for r in refs], [simple_tokenise(s) for s in summs]),
    }
    out = {}
    with tempfile.TemporaryDirectory() as tmp:
        for name, (r, s) in variants.items():
            os.makedirs(os.path.join(tmp, name))
            pair = write_pair(os.path.join(tmp, name), r, s)
            for tokenised in (False, True):
                documents, _ = rxf_rouge.read_documents(*pair)
                if tokenised:
                    documents = [(i, rxf_rouge.ptb_tokenize(a), rxf_rouge.ptb_tokenize(b)) for i, a, b in documents]
                perl = rxf_rouge.parse_report(rxf_rouge.perl_rouge(documents, "."))
                python = rxf_rouge.python_rouge(documents, ".")
                out[name + ("+ptb" if tokenised else "")] = {
                    "perl_f": {m: perl[m]["F"][0] for m in perl},
                    "python_minus_perl": {
                        m: {k: round(python[m][k][0] - perl[m][k][0], 5) for k in "RPF"} for m in perl
                    },
                }
    return out


def main(argv=None) -> int:
    parser = argparse.ArgumentParser(
        description=__doc__.split("\n\n")[0], formatter_class=argparse.RawDescriptionHelpFormatter, epilog=__doc__
    )
    parser.add_argument("part", choices=["timing", "limit", "ptb", "gpl"], help="what to measure")
    parser.add_argument(
        "--backend", action="append", choices=["perl", "python"], help="timing, limit: the backends (default both)"
    )
    parser.add_argument("--documents", type=int, default=CNN_DM_TEST, help="timing: document pairs (default 11490)")
    parser.add_argument(
        "--bytes",
        type=int,
        action="append",
        help=f"limit: line sizes (default rxf-rouge's --max-line-bytes, {rxf_rouge.DEFAULT_MAX_LINE_BYTES})",
    )
    parser.add_argument("--out", help="also write the JSON here")
    args = parser.parse_args(argv)
    args.backend = args.backend or ["perl", "python"]
    result = {
        "part": args.part,
        "date": time.strftime("%Y-%m-%d"),
        "machine": f"{platform.machine()}, "
        f"{os.cpu_count()} CPUs, {platform.python_implementation()} {platform.python_version()}",
        "load_average_before": os.getloadavg()[0],
        "result": globals()[args.part](args),
        "load_average_after": os.getloadavg()[0],
    }
    text = json.dumps(result, indent=2) + "\n"
    sys.stdout.write(text)
    if args.out:
        from rxf_repro.outputs import write_file_atomically

        write_file_atomically(args.out, text)
    return 0


if __name__ == "__main__":
    sys.exit(main())
