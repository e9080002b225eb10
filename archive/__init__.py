"""Preserved bytes: building, writing and reading WARC/1.1 files (standard library + warcio).

Build records with :class:`RecordFactory`, write them with :class:`RotatingWarcWriter`,
read them back with :func:`read_record` / :func:`iter_records`.
"""

from archive.digests import Sha256Stream, labelled, parse_labelled, sha256_hex
from archive.reader import (
    ContentDecodingError,
    StoredRecord,
    TruncatedWarcError,
    decoded_payload,
    iter_records,
    read_record,
    verify_record,
)
from archive.records import RecordFactory, block_bytes, format_warc_date, record_id
from archive.writer import RecordLocation, RotatingWarcWriter

__all__ = [
    "ContentDecodingError",
    "RecordFactory",
    "RecordLocation",
    "RotatingWarcWriter",
    "Sha256Stream",
    "StoredRecord",
    "TruncatedWarcError",
    "block_bytes",
    "decoded_payload",
    "format_warc_date",
    "iter_records",
    "labelled",
    "parse_labelled",
    "read_record",
    "record_id",
    "sha256_hex",
    "verify_record",
]
