"""The ROUGE scorer of the paper's Table 4, the files2rouge way, from package registries alone: ``rxf-rouge``
(``command``), its two backends (``perl``: the official ROUGE-1.5.5; ``python_backend``: Google's rouge-score) and
``rxf-ptb-tokenize`` (``ptb``). Imports neither fairseq nor torch."""

# the API the harness, the benchmark and the tests use
from rxf_repro.rouge.command import build_parser, main  # noqa: F401
from rxf_repro.rouge.documents import DEFAULT_MAX_LINE_BYTES, read_documents, read_lines, split_sentences  # noqa: F401
from rxf_repro.rouge.perl import check_perl, perl_rouge, rouge_home, wordnet_db_keys  # noqa: F401
from rxf_repro.rouge.ptb import ptb_tokenize, ptb_tokenize_main  # noqa: F401
from rxf_repro.rouge.python_backend import format_report, parse_report, python_rouge  # noqa: F401
