"""SHA-256 digests in the form written to WARC headers.

linkarchive writes every digest as ``sha256:<64 lowercase hex digits>``: the value part
compares directly with ``sha256sum`` output, and warcio's verifier (``warcio check``)
accepts base16 values (it decodes them before comparing).  For reading, digests written
by other tools (base32, as Heritrix/warcio write SHA-1, or base64) are understood too.
"""

from __future__ import annotations

import base64
import binascii
import hashlib
import re

__all__ = [
    "ALGORITHM",
    "Sha256Stream",
    "digest_matches",
    "labelled",
    "parse_labelled",
    "sha256_hex",
    "sha256_labelled",
]

ALGORITHM = "sha256"
_HEX64 = re.compile(r"[0-9a-f]{64}")


def sha256_hex(data: bytes) -> str:
    """Return the SHA-256 of ``data`` as 64 lowercase hex digits."""
    return hashlib.sha256(data).hexdigest()


def labelled(hex_digest: str) -> str:
    """Return ``"sha256:<hex>"`` for a SHA-256 hex digest (upper case is lowered).

    Raises ValueError if ``hex_digest`` is not 64 hex digits.
    """
    value = hex_digest.lower()
    if not _HEX64.fullmatch(value):
        raise ValueError(f"not a SHA-256 hex digest: {hex_digest!r}")
    return f"{ALGORITHM}:{value}"


def sha256_labelled(data: bytes) -> str:
    """Shortcut for ``labelled(sha256_hex(data))``."""
    return labelled(sha256_hex(data))


class Sha256Stream:
    """Incremental SHA-256: feed chunks with :meth:`update`, read the result at any time."""

    __slots__ = ("_hash", "length")

    def __init__(self, data: bytes = b"") -> None:
        self._hash = hashlib.sha256()
        #: number of bytes hashed so far
        self.length = 0
        if data:
            self.update(data)

    def update(self, data: bytes) -> Sha256Stream:
        """Hash ``data`` (bytes-like); returns self so calls can be chained."""
        self._hash.update(data)
        self.length += len(data)
        return self

    def digest(self) -> bytes:
        """Raw 32-byte digest of everything hashed so far."""
        return self._hash.digest()

    def hexdigest(self) -> str:
        """Lowercase hex digest of everything hashed so far."""
        return self._hash.hexdigest()

    def labelled(self) -> str:
        """``"sha256:<hex>"`` of everything hashed so far."""
        return f"{ALGORITHM}:{self._hash.hexdigest()}"

    def copy(self) -> Sha256Stream:
        """Independent copy of the current state."""
        other = Sha256Stream()
        other._hash = self._hash.copy()
        other.length = self.length
        return other


def parse_labelled(value: str) -> tuple[str, bytes]:
    """Split a WARC digest ``"<algorithm>:<value>"`` into (algorithm, raw digest bytes).

    The value may be base16 (any case), base32 or base64 (standard or URL-safe), as
    WARC 1.1 allows; the encoding is recognised from the length the algorithm's digest
    needs.  The algorithm is returned lower-cased without ``-`` (``SHA-256`` -> ``sha256``).
    Raises ValueError if the value is unlabelled, of an unknown algorithm or undecodable.
    """
    algo, sep, encoded = value.strip().partition(":")
    if not sep or not algo or not encoded:
        raise ValueError(f"digest without algorithm label: {value!r}")
    algo = algo.lower().replace("-", "")
    try:
        size = hashlib.new(algo).digest_size
    except ValueError:
        raise ValueError(f"unknown digest algorithm {algo!r} in {value!r}") from None
    decoders = (
        lambda v: base64.b16decode(v, casefold=True),
        lambda v: base64.b32decode(v + "=" * (-len(v) % 8), casefold=True),
        lambda v: base64.b64decode(v + "=" * (-len(v) % 4), altchars=b"-_", validate=True),
        lambda v: base64.b64decode(v + "=" * (-len(v) % 4), validate=True),
    )
    for decode in decoders:
        try:
            raw = decode(encoded)
        except (binascii.Error, ValueError):
            continue
        if len(raw) == size:
            return algo, raw
    raise ValueError(f"cannot decode {algo} digest value in {value!r}")


def digest_matches(value: str, data: bytes) -> bool:
    """True if the labelled digest ``value`` (any algorithm/encoding) is the digest of ``data``.

    Raises ValueError if ``value`` cannot be parsed (see :func:`parse_labelled`).
    """
    algo, raw = parse_labelled(value)
    return hashlib.new(algo, data).digest() == raw
