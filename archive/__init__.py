"""Preserved bytes: building, writing and reading WARC/1.1 files (standard library + warcio).

Build records with :class:`RecordFactory`, write them with :class:`RotatingWarcWriter`,
read them back with :func:`read_record` / :func:`iter_records`, and close what a killed
writer left open with :func:`recover_open_file`.
"""

from archive.cdxj import read_cdxj, write_cdxj
from archive.digests import Sha256Stream, labelled, parse_labelled, sha256_hex
from archive.reader import (
    ContentDecodingError,
    StoredRecord,
    TruncatedWarcError,
    decoded_payload,
    iter_records,
    read_record,
    verify_record,
    warc_fields,
)
from archive.records import RecordFactory, block_bytes, format_warc_date, record_id
from archive.recover import Recovery, recover_open_file, stale_open_files, writer_alive
from archive.writer import RecordLocation, RotatingWarcWriter

__all__ = [
    "ContentDecodingError",
    "RecordFactory",
    "RecordLocation",
    "Recovery",
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
    "read_cdxj",
    "read_record",
    "record_id",
    "recover_open_file",
    "sha256_hex",
    "stale_open_files",
    "verify_record",
    "warc_fields",
    "write_cdxj",
    "writer_alive",
]
