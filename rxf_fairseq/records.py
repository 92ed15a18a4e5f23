"""Moved to ``rxf_repro.records`` (run records need no fairseq); this name stays until every reader has moved."""

from rxf_repro.records import *  # noqa: F401,F403
from rxf_repro.records import RECORD_NAME, RecordError, find_record_files, load_records, validate, write_record  # noqa: F401
