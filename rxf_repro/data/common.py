"""What every data-preparation pipeline shares: fairseq-preprocess, GPT-2 BPE and sentencepiece models loaded once
and checked, worker pools that never hang or outlive us, owned outputs (``rxf_repro.outputs``), errors."""

import contextlib
import functools
import json
import multiprocessing
import multiprocessing.pool
import os
import signal
import sys
import time
from dataclasses import dataclass
from typing import Any, Callable, Iterator, List, Optional, Sequence, Tuple

from rxf_repro import process
from rxf_repro.cli import positive_int
from rxf_repro.outputs import MARKER, OutputError, check_destination, clean_leftovers, output_folder, owner

__all__ = [
    "MARKER",
    "OutputError",
    "PreprocessError",
    "TextEncoder",
    "atomic_output",
    "bpe_encode_file",
    "check_output",
    "fairseq_preprocess",
    "load_gpt2_bpe",
    "load_sentencepiece",
    "load_wordpiece",
    "log",
    "map_lines",
    "output_folder",
    "owner",
    "positive_int",
    "run_pipeline",
    "read_text_lines",
    "text_encoder",
    "worker_pool",
    "wordpiece_encode_file",
    "write_summary",
]


class PreprocessError(Exception):
    """Bad input: printed as ``TOOL: error: file:line: what``, exit 1, nothing written."""


def write_summary(folder: str, summary: dict) -> None:
    """``summary.json`` (examples, tokens, label counts per split) next to the binaries."""
    with open(os.path.join(folder, "summary.json"), "w", encoding="utf-8") as f:
        json.dump(summary, f, indent=2)


def log(message: str) -> None:
    print(message, file=sys.stderr, flush=True)


# ------------------------------------------------------------------------------------------ outputs


def check_output(dest: str, tool: str, kind: str, inputs: Sequence[str] = (), overwrite: bool = False) -> None:
    """Before any work: put back, or remove, what killed runs left beside ``dest`` (an earlier output renamed
    aside is restored, so a failing rerun still leaves it in place), then refuse a destination that
    ``rxf_repro.outputs.output_folder`` would refuse at the end (a link, a file, another tool's or the user's
    folder, an input, a parent we cannot write in). Raises ``OutputError``."""
    try:
        clean_leftovers(dest)
    except OSError as error:
        raise OutputError(
            f"output folder {dest}: cannot restore or remove a killed run's leftovers beside it "
            f"({error.strerror}: {error.filename}); remove them by hand"
        ) from None
    check_destination(dest, tool, kind, inputs=inputs, overwrite=overwrite)


def atomic_output(dest: str, tool: str = "rxf_fairseq", kind: str = "data", **kwargs) -> Iterator[str]:
    """``rxf_repro.outputs.output_folder(dest, tool, kind, ...)``, kept for callers written before it
    (``tests/toy.py``); new code calls ``output_folder`` with its own tool and kind."""
    return output_folder(dest, tool, kind, **kwargs)


# ------------------------------------------------------------------------------------------ worker pools

_HELD = (signal.SIGINT, signal.SIGTERM)
_MODEL: Optional[Any] = None  # the BPE / sentencepiece model of this process (a forked worker inherits it)
_MODEL_KEY: Optional[Tuple] = None
_WORKER_ERROR: Optional[str] = None  # why this worker could not load the model


def _start_worker(initializer: Optional[Callable] = None, initargs: Tuple = ()) -> None:
    """First thing in every pool worker: Ctrl-C is the parent's to handle, SIGTERM (``Pool.terminate``) ends the
    worker at once, and only then the signals held while the pool started are let through. A model that fails to
    load is reported by the first line the worker gets, instead of killing it (a ``Pool`` replaces a worker that
    dies in its initializer, forever)."""
    global _WORKER_ERROR
    signal.signal(signal.SIGINT, signal.SIG_IGN)
    signal.signal(signal.SIGTERM, signal.SIG_DFL)
    signal.pthread_sigmask(signal.SIG_UNBLOCK, _HELD)
    if initializer is not None:
        try:
            initializer(*initargs)
        except Exception as error:  # reported through the results, see _map_chunk
            _WORKER_ERROR = str(error) if isinstance(error, PreprocessError) else repr(error)


def worker_pool(
    processes: int, initializer: Optional[Callable] = None, initargs: Tuple = (), **kwargs: Any
) -> multiprocessing.pool.Pool:
    """``multiprocessing.Pool`` that Ctrl-C or SIGTERM cannot leave half-built: the signals wait while it forks
    its workers and starts its threads (a worker forked just before a ``SystemExit`` is never registered, and
    nothing would stop it), and each worker lets them through only once it has its own handlers."""
    old = signal.pthread_sigmask(signal.SIG_BLOCK, _HELD)
    try:
        return multiprocessing.Pool(processes, initializer=_start_worker, initargs=(initializer, initargs), **kwargs)
    finally:
        signal.pthread_sigmask(signal.SIG_SETMASK, old)


# ------------------------------------------------------------------------------------------ fairseq-preprocess


@contextlib.contextmanager
def _fairseq_pools_are_worker_pools() -> Iterator[None]:
    """fairseq-preprocess's dictionary and binarizer start plain ``Pool``s: make them ``worker_pool``s."""
    from fairseq import binarizer
    from fairseq.data import dictionary

    modules = (binarizer, dictionary)
    saved = [module.Pool for module in modules]
    for module in modules:
        module.Pool = worker_pool
    try:
        yield
    finally:
        for module, pool in zip(modules, saved):
            module.Pool = pool


def _stop_forked_workers() -> None:
    """fairseq-preprocess's binarizer starts a ``Pool`` it does not close on an exception (Ctrl-C, SIGTERM):
    stop its workers before the temporary folder they write into is removed."""
    for child in multiprocessing.active_children():
        child.terminate()
    for child in multiprocessing.active_children():
        child.join(5)


def fairseq_preprocess(args: Sequence[str], cwd: Optional[str] = None) -> None:
    """``fairseq-preprocess ARGS``, run in this process (importing fairseq once per pipeline, not once per
    call) and, with ``cwd``, in that folder; raises ``PreprocessError`` naming the arguments if fairseq refuses
    or fails.

    fairseq splits ``--validpref`` and ``--testpref`` on commas, so the pipelines give their prefixes relative
    to ``cwd`` (the temporary output folder, whose own name we choose): a comma in the user's output path
    then reaches fairseq only in ``--destdir``, which it does not split."""
    import logging

    from fairseq import options
    from fairseq_cli import preprocess

    root = logging.getLogger()
    handlers = list(root.handlers) + list(preprocess.logger.handlers)
    previous = os.getcwd()
    try:
        if cwd is not None:
            os.chdir(cwd)
        with _fairseq_pools_are_worker_pools():
            preprocess.main(options.get_preprocessing_parser().parse_args(list(args)))
    except SystemExit as error:
        if error.code != 2:  # SIGTERM (rxf_repro.process), not argparse
            _stop_forked_workers()
            raise
        raise PreprocessError(f"fairseq-preprocess {' '.join(args)}: bad arguments (exit {error.code})") from None
    except Exception as error:
        raise PreprocessError(f"fairseq-preprocess {' '.join(args)} failed: {error!r}") from error
    except BaseException:  # Ctrl-C
        _stop_forked_workers()
        raise
    finally:  # fairseq adds a FileHandler for DESTDIR/preprocess.log on every call
        os.chdir(previous)
        for logger in (root, preprocess.logger):
            for handler in list(logger.handlers):
                if handler not in handlers:
                    logger.removeHandler(handler)
                    handler.close()


# ------------------------------------------------------------------------------------------ models


def _loaded(key: Tuple, load: Callable[[], Any]) -> Any:
    global _MODEL, _MODEL_KEY
    if _MODEL_KEY != key:
        _MODEL, _MODEL_KEY = load(), key
    return _MODEL


def _read_utf8(path: str) -> str:
    try:
        with open(path, "rb") as f:
            data = f.read()
    except OSError as error:
        raise PreprocessError(f"{path}: cannot read it ({error.strerror})") from None
    try:
        return data.decode("utf-8")
    except UnicodeDecodeError as error:
        line = data[: error.start].count(b"\n") + 1
        raise PreprocessError(f"{path}:{line}: not UTF-8 ({error.reason} at byte {error.start})") from None


def _gpt2_bpe(encoder_json: str, vocab_bpe: str) -> Any:
    """fairseq's GPT-2 ``Encoder`` from the two files, after checking what would otherwise fail line by line
    inside the workers: JSON of symbol -> id, every byte symbol, merge lines of two symbols whose result is
    in the encoder."""
    from fairseq.data.encoders.gpt2_bpe_utils import Encoder, bytes_to_unicode

    try:
        encoder = json.loads(_read_utf8(encoder_json))
    except json.JSONDecodeError as error:
        raise PreprocessError(
            f"{encoder_json}:{error.lineno}: not valid JSON ({error.msg}, column {error.colno}); "
            "give GPT-2's encoder.json"
        ) from None
    if not isinstance(encoder, dict) or not all(isinstance(k, str) and type(v) is int for k, v in encoder.items()):
        raise PreprocessError(f"{encoder_json}: not GPT-2's encoder.json (a JSON object of BPE symbol -> integer id)")
    missing = [s for s in bytes_to_unicode().values() if s not in encoder]
    if missing:
        raise PreprocessError(
            f"{encoder_json}: lacks {len(missing)} of the 256 byte symbols (first {missing[0]!r}); "
            "give GPT-2's encoder.json"
        )
    lines = _read_utf8(vocab_bpe).split("\n")
    if not lines[0].startswith("#version"):
        raise PreprocessError(
            f"{vocab_bpe}:1: expected GPT-2's '#version: 0.2' header line, got {lines[0][:40]!r} "
            "(the first line is skipped as a header); give GPT-2's vocab.bpe"
        )
    merges = []
    for number, line in enumerate(lines[1:-1], start=2):  # as fairseq's get_encoder reads it
        merge = tuple(line.split())
        if len(merge) != 2:
            raise PreprocessError(
                f"{vocab_bpe}:{number}: expected a merge of two symbols separated by a space, got {line[:40]!r}"
            )
        if merge[0] + merge[1] not in encoder:
            raise PreprocessError(
                f"{vocab_bpe}:{number}: merge {line!r} makes {merge[0] + merge[1]!r}, which is not "
                f"in {encoder_json}: the two files do not belong together"
            )
        merges.append(merge)
    return Encoder(encoder=encoder, bpe_merges=merges)


def load_gpt2_bpe(encoder_json: str, vocab_bpe: str) -> Any:
    """GPT-2's BPE, loaded (once) in the process that calls it, before any worker starts: a bad file is one
    ``PreprocessError`` naming it, never a pool whose every worker fails."""
    return _loaded(("gpt2", encoder_json, vocab_bpe), functools.partial(_gpt2_bpe, encoder_json, vocab_bpe))


def _sentencepiece(model: str) -> Any:
    import sentencepiece

    if not os.path.isfile(model):
        raise PreprocessError(f"missing file: {model}")
    try:
        processor = sentencepiece.SentencePieceProcessor(model_file=model)
    except Exception as error:
        reason = " ".join(str(error).split())[:200]
        raise PreprocessError(
            f"{model}: not a sentencepiece model ({reason}); give XLM-R's sentencepiece.bpe.model"
        ) from None
    if processor.get_piece_size() == 0:
        raise PreprocessError(f"{model}: a sentencepiece model with no pieces")
    return processor


def load_sentencepiece(model: str) -> Any:
    """A sentencepiece model, loaded (once) before any worker starts; see ``load_gpt2_bpe``."""
    return _loaded(("sentencepiece", model), functools.partial(_sentencepiece, model))


def _map_chunk(func: Callable[[str], str], chunk: Sequence[str]) -> Tuple[List[str], Optional[Exception]]:
    """One pool task: ``func`` over a chunk of lines; the results up to the first line that fails, and its error
    (None if none failed)."""
    if _WORKER_ERROR is not None:
        raise PreprocessError(_WORKER_ERROR)
    done = []
    for line in chunk:
        try:
            done.append(func(line))
        except Exception as error:
            return done, error
    return done, None


def map_lines(
    func: Callable[[str], str],
    lines: Sequence[str],
    workers: int,
    initializer: Callable,
    initargs: Tuple,
    label: str,
    every: float = 10.0,
) -> List[str]:
    """``[func(line) for line in lines]`` in ``workers`` processes (each set up by ``initializer(*initargs)``,
    which is called here first, so that a bad model fails once, in this process), order kept, with progress on
    stderr every ``every`` seconds: encoding a large corpus takes minutes. An error on a line is a
    ``PreprocessError`` naming ``label`` and the line; the pool is terminated on any error, Ctrl-C or SIGTERM.

    Ctrl-C and SIGTERM are held while the pool runs and looked at between results, so that their exception is
    raised once the pool is terminated, never inside its locks and threads: raised there, it could leave
    ``Pool.terminate`` waiting forever (a pipeline stopped so during encoding hung twice under the full test
    suite)."""
    initializer(*initargs)
    started = last = time.time()
    results: List[str] = []

    def collect(iterator):
        nonlocal last
        try:
            for result in iterator:
                results.append(result)
                if time.time() - last >= every:
                    last = time.time()
                    log(f"{label}: {len(results):,}/{len(lines):,} lines, {last - started:.0f} s")
        except PreprocessError:
            raise
        except Exception as error:
            raise PreprocessError(f"{label}: line {len(results) + 1}: {error!r}") from None

    if workers > 1 and len(lines) > 1:
        size = max(1, min(2000, len(lines) // (workers * 8)))
        chunks = (lines[i : i + size] for i in range(0, len(lines), size))
        with process.interrupts_deferred() as held, worker_pool(workers, initializer, initargs) as pool:
            collect(_until_interrupted(pool.imap(functools.partial(_map_chunk, func), chunks), held))
    else:
        collect(map(func, lines))
    return results


def _until_interrupted(chunks: Any, held: "process.Held") -> Iterator[str]:
    """The lines' results from a pool's ``imap`` of ``_map_chunk``, until they end or a held Ctrl-C or SIGTERM
    arrives; a line that failed raises its error in its place."""
    while not held.received:
        try:
            done, error = chunks.next(timeout=0.1)
        except multiprocessing.TimeoutError:
            continue
        except StopIteration:
            return
        yield from done
        if error is not None:
            raise error


def _init_bpe(encoder_json: str, vocab_bpe: str) -> None:
    load_gpt2_bpe(encoder_json, vocab_bpe)


def _encode(line: str) -> str:
    return " ".join(map(str, _MODEL.encode(line.strip())))


def bpe_encode_file(src: str, dest: str, encoder_json: str, vocab_bpe: str, workers: int = 1, label: str = "") -> int:
    """GPT-2 BPE ids, one line per line, as fairseq's ``examples/roberta/multiprocessing_bpe_encoder.py``.
    Returns the number of BPE tokens written."""
    with open(src, encoding="utf-8") as f:
        lines = f.read().split("\n")[:-1]
    encoded = map_lines(
        _encode, lines, workers, _init_bpe, (encoder_json, vocab_bpe), label or f"BPE-encoding {os.path.basename(src)}"
    )
    with open(dest, "w", encoding="utf-8") as f:
        f.write("\n".join(encoded) + "\n")
    return sum(len(line.split()) for line in encoded)


# ------------------------------------------------------------------------------------------ WordPiece


def _wordpiece(vocab: str) -> Any:
    """The source's own tokenizer: ``tokenizer.json`` beside ``vocab.txt`` when there is one (the exact pipeline
    the model was trained with, lower-casing and accent stripping included), else a BERT WordPiece tokenizer on
    ``vocab.txt`` with ``tokenizer_config.json``'s ``do_lower_case`` (default: lower-case, as uncased BERT)."""
    if not os.path.isfile(vocab):
        raise PreprocessError(f"missing file: {vocab}")
    try:
        from tokenizers import Tokenizer
        from tokenizers.implementations import BertWordPieceTokenizer
    except ImportError:  # pragma: no cover - installed with the project
        raise PreprocessError("--wordpiece-vocab needs the tokenizers package: pip install tokenizers") from None
    folder = os.path.dirname(os.path.abspath(vocab))
    full = os.path.join(folder, "tokenizer.json")
    try:
        if os.path.isfile(full):
            tokenizer = Tokenizer.from_file(full)
        else:
            lower = True
            config = os.path.join(folder, "tokenizer_config.json")
            if os.path.isfile(config):
                with open(config, encoding="utf-8") as f:
                    lower = bool(json.load(f).get("do_lower_case", True))
            tokenizer = BertWordPieceTokenizer(vocab, lowercase=lower)
    except Exception as error:
        raise PreprocessError(
            f"{full if os.path.isfile(full) else vocab}: not a WordPiece tokenizer "
            f"({' '.join(str(error).split())[:200]})"
        ) from None
    tokenizer.no_truncation()
    tokenizer.no_padding()
    if tokenizer.get_vocab_size() == 0:
        raise PreprocessError(f"{vocab}: an empty vocabulary")
    return tokenizer


def load_wordpiece(vocab: str) -> Any:
    """A WordPiece tokenizer, loaded (once) here: a bad file is one ``PreprocessError`` naming it."""
    return _loaded(("wordpiece", vocab), functools.partial(_wordpiece, vocab))


def wordpiece_encode_file(src: str, dest: str, vocab: str, label: str = "") -> int:
    """WordPiece tokens (the strings, e.g. ``play ##ing``; fairseq-preprocess maps them with the imported
    ``dict.txt``), one line per line, without ``[CLS]``/``[SEP]`` (fairseq's task adds ``<s>``/``</s>``). The
    tokenizers library encodes in parallel threads of its own. Returns the number of tokens written."""
    tokenizer = load_wordpiece(vocab)
    with open(src, encoding="utf-8") as f:
        lines = f.read().split("\n")[:-1]
    started = time.time()
    encoded: List[str] = []
    for first in range(0, len(lines), 10000):
        batch = tokenizer.encode_batch(
            [line.strip() for line in lines[first : first + 10000]], add_special_tokens=False
        )
        encoded += [" ".join(e.tokens) for e in batch]
        if len(lines) > 10000:
            log(
                f"{label or 'WordPiece-encoding ' + os.path.basename(src)}: {len(encoded):,}/{len(lines):,} lines, "
                f"{time.time() - started:.0f} s"
            )
    with open(dest, "w", encoding="utf-8") as f:
        f.write("\n".join(encoded) + "\n")
    return sum(len(line.split()) for line in encoded)


@dataclass(frozen=True)
class TextEncoder:
    """How a pipeline turns text into tokens for fairseq-preprocess: GPT-2 BPE (``encoder.json`` + ``vocab.bpe``, ids
    as fairseq's RoBERTa recipe writes them) or WordPiece (``vocab.txt`` of a BERT checkpoint imported with
    ``rxf-import-hf``, token strings)."""

    encoder_json: Optional[str] = None
    vocab_bpe: Optional[str] = None
    wordpiece_vocab: Optional[str] = None

    @property
    def name(self) -> str:
        return "WordPiece" if self.wordpiece_vocab else "GPT-2 BPE"

    @property
    def files(self) -> Tuple[str, ...]:
        return (self.wordpiece_vocab,) if self.wordpiece_vocab else (self.encoder_json, self.vocab_bpe)

    def load(self) -> None:
        """Once, in this process, before any worker starts: a bad model is one line, never a hang."""
        for path in self.files:
            if not os.path.isfile(path):
                raise PreprocessError(f"missing file: {path}")
        if self.wordpiece_vocab:
            load_wordpiece(self.wordpiece_vocab)
        else:
            load_gpt2_bpe(self.encoder_json, self.vocab_bpe)

    def encode_file(self, src: str, dest: str, workers: int, label: str) -> int:
        if self.wordpiece_vocab:
            return wordpiece_encode_file(src, dest, self.wordpiece_vocab, label)
        return bpe_encode_file(src, dest, self.encoder_json, self.vocab_bpe, workers, label)


def text_encoder(encoder_json: Optional[str], vocab_bpe: Optional[str], wordpiece_vocab: Optional[str]) -> TextEncoder:
    """The one encoder the flags name (``--encoder-json`` with ``--vocab-bpe``, or ``--wordpiece-vocab``)."""
    if wordpiece_vocab and (encoder_json or vocab_bpe):
        raise PreprocessError("give either --wordpiece-vocab or --encoder-json/--vocab-bpe, not both")
    if not wordpiece_vocab and not (encoder_json and vocab_bpe):
        raise PreprocessError(
            "give --encoder-json and --vocab-bpe (GPT-2 BPE: RoBERTa, BART), or --wordpiece-vocab "
            "(a BERT checkpoint imported with rxf-import-hf)"
        )
    return TextEncoder(encoder_json, vocab_bpe, wordpiece_vocab)


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


def run_pipeline(name: str, out: str, work: Callable[[], Any]) -> Tuple[int, Any]:
    """(exit status, ``work()``'s result) of a pipeline's ``main``: a ``PreprocessError`` or ``OutputError`` is one
    line ``NAME: error: ...`` and status 1; Ctrl-C is 130 with OUT as it was (the output folder's cleanup has run)."""
    try:
        return 0, work()
    except (PreprocessError, OutputError) as error:
        print(f"{name}: error: {error}", file=sys.stderr)
        return 1, None
    except KeyboardInterrupt:
        print(f"{name}: interrupted; {out} is as it was", file=sys.stderr)
        return 130, None


def add_overwrite_flag(parser: Any, scope: str = "") -> None:
    """Every pipeline's ``--overwrite``: OUT is replaced only if a marker says this pipeline wrote it, or with it."""
    parser.add_argument(
        "--overwrite",
        action="store_true",
        help=f"replace OUT even if it is not an earlier output of this script{scope} (everything in it is "
        "deleted); without it such a folder is refused and left alone",
    )
