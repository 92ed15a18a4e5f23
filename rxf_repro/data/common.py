"""What every data pipeline shares: text read line by line, the three encoders (GPT-2 BPE, WordPiece, sentencepiece)
loaded once and checked, encoding in threads, fairseq-preprocess."""

import collections
import json
import multiprocessing
import os
import signal
import sys
import threading
import time
from concurrent.futures import Future, ThreadPoolExecutor
from dataclasses import dataclass
from typing import Any, Callable, Deque, List, Optional, Sequence, Tuple

from rxf_repro.cli import UserError, positive_int


def write_summary(folder: str, summary: dict) -> None:
    with open(os.path.join(folder, "summary.json"), "w", encoding="utf-8") as f:
        json.dump(summary, f, indent=2)


def log(message: str) -> None:
    print(message, file=sys.stderr, flush=True)


def add_dict_and_workers_flags(parser: Any, dict_help: str) -> None:
    parser.add_argument("--dict", dest="dictionary", metavar="DICT", required=True, help=dict_help)
    parser.add_argument(
        "--workers", type=positive_int, default=1, help="threads for encoding, processes for binarizing"
    )


def add_overwrite_flag(parser: Any, scope: str = "") -> None:
    parser.add_argument(
        "--overwrite",
        action="store_true",
        help=f"replace OUT even if it is not an earlier output of this script{scope} (everything in it is "
        "deleted); without it such a folder is refused and left alone",
    )


def check_files(*paths: str, hint: str = "") -> None:
    for path in paths:
        if not os.path.isfile(path):
            raise UserError(f"missing file: {path} ({hint})" if hint else f"missing file: {path}")


def _not_utf8(path: str, data: bytes, error: UnicodeDecodeError, line: Optional[int] = None) -> UserError:
    line = line or data[: error.start].count(b"\n") + 1
    return UserError(f"{path}:{line}: not UTF-8 ({error.reason} at byte {error.start})")


def read_text_lines(path: str) -> List[str]:
    """The lines of a UTF-8 text file, split on ``\\n`` only (``\\r\\n`` endings and a leading BOM removed), so line N
    is example N of a line-aligned corpus; bytes that are not UTF-8 are an error naming ``file:line``."""
    lines = []
    with open(path, "rb") as f:
        for number, raw in enumerate(f, start=1):
            try:
                line = raw.decode("utf-8")
            except UnicodeDecodeError as error:
                raise _not_utf8(path, raw, error, number) from None
            line = line.removesuffix("\n").removesuffix("\r")
            lines.append(line.removeprefix("\ufeff") if number == 1 else line)
    return lines


def _read_utf8(path: str) -> str:
    try:
        with open(path, "rb") as f:
            data = f.read()
    except OSError as error:
        raise UserError(f"{path}: cannot read it ({error.strerror})") from None
    try:
        return data.decode("utf-8")
    except UnicodeDecodeError as error:
        raise _not_utf8(path, data, error) from None


@dataclass(frozen=True)
class TextEncoder:
    """``encode``: a batch of lines -> one string of space-separated tokens each, in threads (they release the GIL)."""

    name: str
    files: Tuple[str, ...]
    encode: Callable[[List[str]], List[str]]


def _serial_batches() -> None:
    """Our threads (``--workers``) encode the batches: tokenizers must not start rayon's pool as well, whose threads
    a fork of this process (fairseq-preprocess's workers) would not have."""
    os.environ["TOKENIZERS_PARALLELISM"] = "false"


def _gpt2_merges(encoder_json: str, vocab_bpe: str) -> Tuple[dict, List[Tuple[str, str]]]:
    """GPT-2's ``encoder.json`` and ``vocab.bpe``, read as fairseq's ``get_encoder`` reads them, checked: JSON of
    symbol -> id, every byte symbol, merge lines of two symbols whose result is in the encoder."""
    from fairseq.data.encoders.gpt2_bpe_utils import bytes_to_unicode

    try:
        encoder = json.loads(_read_utf8(encoder_json))
    except json.JSONDecodeError as error:
        raise UserError(
            f"{encoder_json}:{error.lineno}: not valid JSON ({error.msg}, column {error.colno}); "
            "give GPT-2's encoder.json"
        ) from None
    if not isinstance(encoder, dict) or not all(isinstance(k, str) and type(v) is int for k, v in encoder.items()):
        raise UserError(f"{encoder_json}: not GPT-2's encoder.json (a JSON object of BPE symbol -> integer id)")
    missing = [s for s in bytes_to_unicode().values() if s not in encoder]
    if missing:
        raise UserError(
            f"{encoder_json}: lacks {len(missing)} of the 256 byte symbols (first {missing[0]!r}); "
            "give GPT-2's encoder.json"
        )
    lines = _read_utf8(vocab_bpe).split("\n")
    if not lines[0].startswith("#version"):
        raise UserError(
            f"{vocab_bpe}:1: expected GPT-2's '#version: 0.2' header line, got {lines[0][:40]!r} "
            "(the first line is skipped as a header); give GPT-2's vocab.bpe"
        )
    merges = []
    for number, line in enumerate(lines[1:-1], start=2):  # fairseq drops the last line, even without a newline
        merge = tuple(line.split())
        if len(merge) != 2:
            raise UserError(
                f"{vocab_bpe}:{number}: expected a merge of two symbols separated by a space, got {line[:40]!r}"
            )
        if merge[0] + merge[1] not in encoder:
            raise UserError(
                f"{vocab_bpe}:{number}: merge {line!r} makes {merge[0] + merge[1]!r}, which is not "
                f"in {encoder_json}: the two files do not belong together"
            )
        merges.append(merge)
    return encoder, merges


def gpt2_bpe(encoder_json: str, vocab_bpe: str) -> TextEncoder:
    """GPT-2's byte-level BPE in the ``tokenizers`` library: the ids of fairseq's ``gpt2_bpe_utils.Encoder`` (as
    ``examples/roberta/multiprocessing_bpe_encoder.py`` writes them; tests/unit/test_encoding.py proves them equal)."""
    from tokenizers import Tokenizer, models, pre_tokenizers

    check_files(encoder_json, vocab_bpe)
    vocab, merges = _gpt2_merges(encoder_json, vocab_bpe)
    try:
        tokenizer = Tokenizer(models.BPE(vocab, merges))
    except Exception as error:  # a merge of symbols the encoder lacks
        raise UserError(f"{vocab_bpe}: not GPT-2's BPE with {encoder_json} ({error})") from None
    tokenizer.pre_tokenizer = pre_tokenizers.ByteLevel(add_prefix_space=False, use_regex=True)
    _serial_batches()
    return TextEncoder(
        "GPT-2 BPE",
        (encoder_json, vocab_bpe),
        lambda lines: [" ".join(map(str, e.ids)) for e in tokenizer.encode_batch(lines, add_special_tokens=False)],
    )


def wordpiece(vocab: str) -> TextEncoder:
    """The checkpoint's ``tokenizer.json`` beside ``vocab.txt`` (the exact pipeline it was trained with), else BERT's
    WordPiece on ``vocab.txt`` with ``tokenizer_config.json``'s ``do_lower_case`` (default True). Tokens are strings
    (``play ##ing``, mapped by the imported ``dict.txt``), without ``[CLS]``/``[SEP]`` (fairseq's task adds them)."""
    from tokenizers import Tokenizer
    from tokenizers.implementations import BertWordPieceTokenizer

    check_files(vocab)
    folder = os.path.dirname(os.path.abspath(vocab))
    full = os.path.join(folder, "tokenizer.json")
    try:
        if os.path.isfile(full):
            tokenizer = Tokenizer.from_file(full)
        else:
            config = os.path.join(folder, "tokenizer_config.json")
            lower = True
            if os.path.isfile(config):
                with open(config, encoding="utf-8") as f:
                    lower = bool(json.load(f).get("do_lower_case", True))
            tokenizer = BertWordPieceTokenizer(vocab, lowercase=lower)
    except Exception as error:
        reason = " ".join(str(error).split())[:200]
        raise UserError(f"{full if os.path.isfile(full) else vocab}: not a WordPiece tokenizer ({reason})") from None
    if tokenizer.get_vocab_size() == 0:
        raise UserError(f"{vocab}: an empty vocabulary")
    tokenizer.no_truncation()
    tokenizer.no_padding()
    _serial_batches()
    return TextEncoder(
        "WordPiece",
        (vocab,),
        lambda lines: [" ".join(e.tokens) for e in tokenizer.encode_batch(lines, add_special_tokens=False)],
    )


def sentencepiece(model: str) -> TextEncoder:
    """A sentencepiece model's pieces, as ``spm_encode --output_format=piece`` writes them (XLM-R's recipe)."""
    import sentencepiece

    check_files(model)
    try:
        processor = sentencepiece.SentencePieceProcessor(model_file=model)
    except Exception as error:
        reason = " ".join(str(error).split())[:200]
        raise UserError(
            f"{model}: not a sentencepiece model ({reason}); give XLM-R's sentencepiece.bpe.model"
        ) from None
    if processor.get_piece_size() == 0:
        raise UserError(f"{model}: a sentencepiece model with no pieces")
    return TextEncoder(
        "sentencepiece",
        (model,),
        lambda lines: [" ".join(p) for p in processor.encode(lines, out_type=str, num_threads=1)],
    )


def text_encoder(encoder_json: Optional[str], vocab_bpe: Optional[str], wordpiece_vocab: Optional[str]) -> TextEncoder:
    if wordpiece_vocab and (encoder_json or vocab_bpe):
        raise UserError("give either --wordpiece-vocab or --encoder-json/--vocab-bpe, not both")
    if wordpiece_vocab:
        return wordpiece(wordpiece_vocab)
    if not (encoder_json and vocab_bpe):
        raise UserError(
            "give --encoder-json and --vocab-bpe (GPT-2 BPE: RoBERTa, BART), or --wordpiece-vocab "
            "(a BERT checkpoint imported with rxf-import-hf)"
        )
    return gpt2_bpe(encoder_json, vocab_bpe)


def encode_lines(encoder: TextEncoder, lines: Sequence[str], workers: int, label: str) -> List[str]:
    """``encoder`` over the stripped ``lines`` in ``workers`` threads, in order, with progress every 10 s. At most
    ``2 * workers`` small batches are in flight, so memory stays that of the output and Ctrl-C or SIGTERM wait for
    a fraction of a second of work before the cleanup."""
    size = max(1, min(1000, len(lines) // (8 * workers)))
    started = last = time.monotonic()
    encoded: List[str] = []
    in_flight: Deque[Tuple[int, Future]] = collections.deque()

    def collect() -> None:
        nonlocal last
        first, future = in_flight.popleft()
        try:
            encoded.extend(future.result())
        except Exception as error:
            raise UserError(f"{label}: lines {first + 1}-{min(first + size, len(lines))}: {error!r}") from error
        if time.monotonic() - last >= 10:
            last = time.monotonic()
            log(f"{label}: {len(encoded):,}/{len(lines):,} lines, {last - started:.0f} s")

    pool = ThreadPoolExecutor(workers)
    try:
        for first in range(0, len(lines), size):
            batch = [line.strip() for line in lines[first : first + size]]
            in_flight.append((first, pool.submit(encoder.encode, batch)))
            if len(in_flight) >= 2 * workers:
                collect()
        while in_flight:
            collect()
    finally:
        pool.shutdown(cancel_futures=True)
    return encoded


def write_lines(path: str, lines: Sequence[str]) -> None:
    with open(path, "w", encoding="utf-8") as f:
        f.write("\n".join(lines) + "\n")


def encode_to_file(encoder: TextEncoder, lines: Sequence[str], dest: str, workers: int, label: str) -> int:
    """``lines`` encoded into ``dest``, one line per line; returns the number of tokens written."""
    log(label)
    encoded = encode_lines(encoder, lines, workers, label)
    write_lines(dest, encoded)
    return sum(len(line.split()) for line in encoded)


def fairseq_preprocess(args: Sequence[str], cwd: Optional[str] = None, workers: Optional[int] = None) -> None:
    """``fairseq-preprocess ARGS [--workers N]`` in this process (fairseq imported once), in ``cwd`` if given. fairseq
    splits ``--validpref``/``--testpref`` on commas: the pipelines' prefixes, relative to the temporary folder (a name
    we choose), keep a comma of the user's path out of them. fairseq does not stop its ``--workers`` pool on an
    exception (Ctrl-C, SIGTERM): we do, before the folder they write into is removed."""
    import logging

    from fairseq import options
    from fairseq_cli import preprocess

    args = [*args, "--workers", str(workers)] if workers else list(args)
    root = logging.getLogger()
    handlers = list(root.handlers) + list(preprocess.logger.handlers)
    previous = os.getcwd()
    ours = set(multiprocessing.active_children())
    parent = os.getpid()

    def interrupt(signum, frame) -> None:  # inherited by fairseq's workers, which Ctrl-C must not print tracebacks in
        if os.getpid() == parent:
            raise KeyboardInterrupt

    # not when Ctrl-C is ignored (a background job), nor outside the main thread (no handler can be set there)
    quiet = (
        signal.getsignal(signal.SIGINT) is signal.default_int_handler
        and threading.current_thread() is threading.main_thread()
    )
    if quiet:
        signal.signal(signal.SIGINT, interrupt)
    try:
        if cwd is not None:
            os.chdir(cwd)
        preprocess.main(options.get_preprocessing_parser().parse_args(args))
    except SystemExit as error:  # argparse's exit 2 on arguments it refuses (its message is on stderr); not SIGTERM's
        if error.code != 2:
            raise
        raise UserError(f"fairseq-preprocess {' '.join(args)}: refused its arguments (exit {error.code})") from None
    except Exception as error:
        raise UserError(f"fairseq-preprocess {' '.join(args)} failed: {error!r}") from error
    finally:
        for child in set(multiprocessing.active_children()) - ours:  # none after a success: fairseq joined them
            child.terminate()
            child.join(5)
        os.chdir(previous)
        if quiet:
            signal.signal(signal.SIGINT, signal.default_int_handler)
        for logger in (root, preprocess.logger):  # fairseq adds a FileHandler for DESTDIR/preprocess.log every call
            for handler in list(logger.handlers):
                if handler not in handlers:
                    logger.removeHandler(handler)
                    handler.close()
