"""What every data-preparation pipeline shares: fairseq-preprocess, GPT-2 BPE, atomic output, errors."""

import contextlib
import os
import shutil
import sys
import tempfile
import time
from multiprocessing import Pool
from typing import Callable, Iterator, List, Optional, Sequence, Tuple


class PreprocessError(Exception):
    """Bad input: printed as ``error: file:line: what``, non-zero exit, nothing written."""


def positive_int(text: str) -> int:
    """argparse type for --workers and the like."""
    value = int(text)
    if value < 1:
        raise ValueError(text)
    return value


def write_summary(folder: str, summary: dict) -> None:
    """``summary.json`` (examples, tokens, label counts per split) next to the binaries."""
    import json

    with open(os.path.join(folder, "summary.json"), "w") as f:
        json.dump(summary, f, indent=2)


def log(message: str) -> None:
    print(message, file=sys.stderr, flush=True)


def fairseq_preprocess(args: Sequence[str]) -> None:
    """``fairseq-preprocess ARGS``, run in this process (importing fairseq once per pipeline, not once per
    call); raises ``PreprocessError`` naming the arguments if fairseq refuses or fails."""
    import logging

    from fairseq import options
    from fairseq_cli import preprocess

    root = logging.getLogger()
    handlers = list(root.handlers) + list(preprocess.logger.handlers)
    try:
        preprocess.main(options.get_preprocessing_parser().parse_args(list(args)))
    except SystemExit as error:  # argparse
        raise PreprocessError(f"fairseq-preprocess {' '.join(args)}: bad arguments (exit {error.code})") from None
    except Exception as error:
        raise PreprocessError(f"fairseq-preprocess {' '.join(args)} failed: {error!r}") from error
    finally:  # fairseq adds a FileHandler for DESTDIR/preprocess.log on every call
        for logger in (root, preprocess.logger):
            for handler in list(logger.handlers):
                if handler not in handlers:
                    logger.removeHandler(handler)
                    handler.close()


def check_output_folder(dest: str, inputs: Sequence[str] = (), marker: Optional[str] = None) -> None:
    """Refuse an output folder whose replacement would destroy something: one that is, or holds, an input, or
    (with ``marker``) an existing non-empty folder that is not an earlier output of the pipeline."""
    real = os.path.realpath(dest)
    for path in inputs:
        inside = os.path.realpath(path)
        if inside == real or inside.startswith(real.rstrip(os.sep) + os.sep):
            raise PreprocessError(f"output folder {dest} is or contains the input {path}: it would be deleted and "
                                  "replaced; choose another output folder")
    if os.path.exists(dest) and not os.path.isdir(dest):
        raise PreprocessError(f"output {dest} exists and is not a folder")
    if marker and os.path.isdir(dest) and os.listdir(dest) and not os.path.isfile(os.path.join(dest, marker)):
        raise PreprocessError(f"output folder {dest} exists and is not an earlier output of this pipeline (it has no "
                              f"{marker}); remove it or choose another output folder")


@contextlib.contextmanager
def atomic_output(dest: str, inputs: Sequence[str] = (), marker: Optional[str] = None) -> Iterator[str]:
    """A temporary folder beside ``dest`` that replaces ``dest`` only if the block succeeds, so an
    interrupted or failed run never leaves a dataset that looks complete; re-running rebuilds it.
    ``inputs`` and ``marker``: see ``check_output_folder``, called before anything is written."""
    check_output_folder(dest, inputs, marker)
    parent = os.path.dirname(os.path.abspath(dest))
    os.makedirs(parent, exist_ok=True)
    tmp = tempfile.mkdtemp(prefix=f".{os.path.basename(os.path.abspath(dest))}.tmp-", dir=parent)
    try:
        yield tmp
        if os.path.exists(dest):
            shutil.rmtree(dest)
        os.replace(tmp, dest)
    finally:
        shutil.rmtree(tmp, ignore_errors=True)


def map_lines(func: Callable[[str], str], lines: Sequence[str], workers: int, initializer: Callable,
              initargs: Tuple, label: str, every: float = 10.0) -> List[str]:
    """``[func(line) for line in lines]`` in ``workers`` processes (each set up by ``initializer(*initargs)``),
    order kept, with progress on stderr every ``every`` seconds: encoding a large corpus takes minutes."""
    started = last = time.time()
    results: List[str] = []

    def collect(iterator):
        nonlocal last
        for result in iterator:
            results.append(result)
            if time.time() - last >= every:
                last = time.time()
                log(f"{label}: {len(results):,}/{len(lines):,} lines, {last - started:.0f} s")

    if workers > 1 and len(lines) > 1:
        with Pool(workers, initializer=initializer, initargs=initargs) as pool:
            collect(pool.imap(func, lines, chunksize=max(1, min(2000, len(lines) // (workers * 8)))))
    else:
        initializer(*initargs)
        collect(map(func, lines))
    return results


_BPE = None


def _init_bpe(encoder_json: str, vocab_bpe: str) -> None:
    global _BPE
    from fairseq.data.encoders.gpt2_bpe_utils import get_encoder

    _BPE = get_encoder(encoder_json, vocab_bpe)


def _encode(line: str) -> str:
    return " ".join(map(str, _BPE.encode(line.strip())))


def bpe_encode_file(src: str, dest: str, encoder_json: str, vocab_bpe: str, workers: int = 1, label: str = "") -> int:
    """GPT-2 BPE ids, one line per line, as fairseq's ``examples/roberta/multiprocessing_bpe_encoder.py``.
    Returns the number of BPE tokens written."""
    with open(src, encoding="utf-8") as f:
        lines = f.read().split("\n")[:-1]
    encoded = map_lines(_encode, lines, workers, _init_bpe, (encoder_json, vocab_bpe),
                        label or f"BPE-encoding {os.path.basename(src)}")
    with open(dest, "w", encoding="utf-8") as f:
        f.write("\n".join(encoded) + "\n")
    return sum(len(line.split()) for line in encoded)


def read_text_lines(path: str) -> List[str]:
    """The lines of a UTF-8 text file, split on ``\\n`` only (``\\r\\n`` endings and a leading BOM removed), so line N
    is example N of a line-aligned corpus; bytes that are not UTF-8 raise ``PreprocessError`` with ``file:line``."""
    lines = []
    with open(path, "rb") as f:
        for number, raw in enumerate(f, start=1):
            try:
                line = raw.decode("utf-8")
            except UnicodeDecodeError as error:
                raise PreprocessError(f"{path}:{number}: not UTF-8 ({error.reason} at byte {error.start})") from None
            if line.endswith("\n"):
                line = line[:-1]
            if line.endswith("\r"):
                line = line[:-1]
            if number == 1 and line.startswith("\ufeff"):
                line = line[1:]
            lines.append(line)
    return lines
