"""RFC 3161 trusted timestamps: ask a timestamp authority (TSA) to vouch that a SHA-256
digest existed at a time, and check such a token later, offline.

Requests and responses are small DER structures, built and read here by hand (standard
library only; asn1crypto is not a dependency). The signature and certificate chain of a
token are checked with ``openssl ts -verify`` (OpenSSL's own RFC 3161 verifier: CMS
signature, ESS signing-certificate binding, the timeStamping key usage, the chain): the
``cryptography`` package has no RFC 3161/CMS verification, and the same command is what
anyone can run by hand to check the evidence (docs/EVIDENCE.md).

:func:`request_token` returns the whole DER TimeStampResp (status + token), the ``.tsr``
file most guides and OpenSSL's defaults expect (``openssl ts -verify -in x.tsr``,
``openssl ts -reply -in x.tsr -text``). Everything here also reads a bare TimeStampToken
(CMS ContentInfo; ``-token_in`` for openssl), as other tools store them.
"""

from __future__ import annotations

import hashlib
import re
import secrets
import shutil
import subprocess
import tempfile
import urllib.error
import urllib.request
from dataclasses import dataclass
from datetime import UTC, datetime, timedelta
from http.client import HTTPException
from pathlib import Path

__all__ = [
    "SHA256_OID",
    "TimestampError",
    "TokenInfo",
    "build_request",
    "parse_response",
    "parse_token",
    "token_of",
    "request_token",
    "token_time",
    "verify_token",
]

SHA256_OID = "2.16.840.1.101.3.4.2.1"
SIGNED_DATA_OID = "1.2.840.113549.1.7.2"
TST_INFO_OID = "1.2.840.113549.1.9.16.1.4"
MAX_RESPONSE = 1 << 20
STATUS = {
    0: "granted",
    1: "grantedWithMods",
    2: "rejection",
    3: "waiting",
    4: "revocationWarning",
    5: "revocationNotification",
}
FAILURES = {
    0: "badAlg",
    2: "badRequest",
    5: "badDataFormat",
    14: "timeNotAvailable",
    15: "unacceptedPolicy",
    16: "unacceptedExtension",
    17: "addInfoNotAvailable",
    25: "systemFailure",
}


class TimestampError(Exception):
    """A token could not be obtained or read (one line, for the user)."""


@dataclass(frozen=True)
class TokenInfo:
    """What a token's TSTInfo says (unverified until :func:`verify_token`)."""

    gen_time: datetime  # UTC
    hash_algorithm: str  # dotted OID of the message imprint's hash
    imprint: bytes
    serial: int
    nonce: int | None
    policy: str


# ----------------------------------------------------------------------------- DER


class _DerError(ValueError):
    pass


def _tlv(tag: int, content: bytes) -> bytes:
    size = len(content)
    if size < 0x80:
        length = bytes([size])
    else:
        raw = size.to_bytes((size.bit_length() + 7) // 8, "big")
        length = bytes([0x80 | len(raw)]) + raw
    return bytes([tag]) + length + content


def _der_int(value: int) -> bytes:
    return _tlv(0x02, value.to_bytes(value.bit_length() // 8 + 1, "big", signed=True))


def _der_oid(dotted: str) -> bytes:
    parts = [int(p) for p in dotted.split(".")]
    body = bytearray()
    for number in [parts[0] * 40 + parts[1], *parts[2:]]:
        chunk = [number & 0x7F]
        number >>= 7
        while number:
            chunk.append(0x80 | (number & 0x7F))
            number >>= 7
        body.extend(reversed(chunk))
    return _tlv(0x06, bytes(body))


def _read(data: bytes, pos: int) -> tuple[int, bytes, int]:
    """One TLV at ``pos``: (tag byte, content, position after it). DER only."""
    if pos + 2 > len(data):
        raise _DerError("truncated")
    tag = data[pos]
    if tag & 0x1F == 0x1F:
        raise _DerError("multi-byte tag")
    first = data[pos + 1]
    pos += 2
    if first < 0x80:
        size = first
    elif first == 0x80:
        raise _DerError("indefinite length (BER, not DER)")
    else:
        count = first & 0x7F
        if count > 4 or pos + count > len(data):
            raise _DerError("bad length")
        size = int.from_bytes(data[pos : pos + count], "big")
        pos += count
    if pos + size > len(data):
        raise _DerError("truncated")
    return tag, data[pos : pos + size], pos + size


def _items(content: bytes) -> list[tuple[int, bytes, bytes]]:
    """The TLVs inside a constructed value: (tag, content, whole encoding)."""
    items = []
    pos = 0
    while pos < len(content):
        tag, value, end = _read(content, pos)
        items.append((tag, value, content[pos:end]))
        pos = end
    return items


def _one(data: bytes, tag: int, what: str) -> bytes:
    """The content of ``data``, which must be exactly one TLV with ``tag``."""
    got, value, end = _read(data, 0)
    if got != tag or end != len(data):
        raise _DerError(f"{what} is not a well-formed DER value")
    return value


def _expect(item: tuple[int, bytes, bytes], tag: int, what: str) -> bytes:
    if item[0] != tag:
        raise _DerError(f"{what}: unexpected tag 0x{item[0]:02x}")
    return item[1]


def _oid(content: bytes) -> str:
    numbers: list[int] = []
    value = 0
    for byte in content:
        value = (value << 7) | (byte & 0x7F)
        if not byte & 0x80:
            numbers.append(value)
            value = 0
    if not numbers:
        raise _DerError("empty OID")
    first = min(numbers[0] // 40, 2)
    return ".".join(str(n) for n in [first, numbers[0] - 40 * first, *numbers[1:]])


def _int(content: bytes) -> int:
    if not content:
        raise _DerError("empty INTEGER")
    return int.from_bytes(content, "big", signed=True)


_GENERALIZED = re.compile(r"(\d{14})(?:[.,](\d{1,9}))?Z")


def _generalized_time(content: bytes) -> datetime:
    match = _GENERALIZED.fullmatch(content.decode("ascii", "replace"))
    if not match:
        raise _DerError(f"genTime {content!r} is not a UTC GeneralizedTime")
    moment = datetime.strptime(match[1], "%Y%m%d%H%M%S").replace(tzinfo=UTC)
    if match[2]:
        moment += timedelta(microseconds=round(int(match[2]) * 10 ** (6 - len(match[2]))))
    return moment


# ----------------------------------------------------------------------------- messages


def build_request(digest: bytes, nonce: int) -> bytes:
    """A DER TimeStampReq: v1, SHA-256 imprint of ``digest``, ``nonce``, certReq TRUE."""
    algorithm = _tlv(0x30, _der_oid(SHA256_OID) + b"\x05\x00")
    imprint = _tlv(0x30, algorithm + _tlv(0x04, digest))
    return _tlv(0x30, _der_int(1) + imprint + _der_int(nonce) + b"\x01\x01\xff")


def _status_text(items: list[tuple[int, bytes, bytes]]) -> tuple[int, str]:
    status = _int(_expect(items[0], 0x02, "PKIStatus"))
    details = []
    for tag, value, _ in items[1:]:
        if tag == 0x30:  # PKIFreeText
            for _, text, _ in _items(value):
                details.append(text.decode("utf-8", "replace"))
        elif tag == 0x03 and value:  # PKIFailureInfo
            bits = value[1:]
            names = [
                FAILURES.get(i, f"bit {i}")
                for i in range(len(bits) * 8)
                if bits[i // 8] >> (7 - i % 8) & 1
            ]
            details.append("failure: " + ", ".join(names))
    label = f"{STATUS.get(status, 'unknown')} ({status})"
    return status, "; ".join([label, *details])


def parse_response(response: bytes) -> bytes:
    """The TimeStampToken of a DER TimeStampResp; TimestampError if the TSA did not grant."""
    try:
        items = _items(_one(response, 0x30, "TimeStampResp"))
        if not items:
            raise _DerError("empty TimeStampResp")
        status, text = _status_text(_items(_expect(items[0], 0x30, "PKIStatusInfo")))
    except _DerError as exc:
        raise TimestampError(f"not a timestamp response: {exc}") from None
    text = " ".join(text.split())
    if status not in (0, 1):
        raise TimestampError(f"the timestamp authority refused the request: {text}")
    if len(items) < 2:
        raise TimestampError(f"the timestamp response holds no token (status {text})")
    return items[1][2]


def _is_response(data: bytes) -> bool:
    """A TimeStampResp starts with a SEQUENCE (PKIStatusInfo), a token with an OID."""
    try:
        first = _items(_one(data, 0x30, "timestamp"))[0][0]
    except (_DerError, IndexError):
        return False
    return first == 0x30


def token_of(data: bytes) -> bytes:
    """The TimeStampToken of a TimeStampResp (which must be granted), or ``data`` itself
    if it is a bare token."""
    return parse_response(data) if _is_response(data) else data


def parse_token(token: bytes) -> TokenInfo:
    """The TSTInfo of a DER TimeStampToken (CMS ContentInfo of SignedData) or of a
    TimeStampResp holding one. Unverified."""
    token = token_of(token)
    try:
        info = _items(_one(token, 0x30, "ContentInfo"))
        if len(info) != 2 or _oid(_expect(info[0], 0x06, "contentType")) != SIGNED_DATA_OID:
            raise _DerError("not a CMS SignedData")
        signed = _items(_one(_expect(info[1], 0xA0, "content"), 0x30, "SignedData"))
        encap = _items(_expect(signed[2], 0x30, "encapContentInfo"))
        if _oid(_expect(encap[0], 0x06, "eContentType")) != TST_INFO_OID:
            raise _DerError("the signed content is not a TSTInfo")
        wrapped = _expect(encap[1], 0xA0, "eContent")
        tag, octets, end = _read(wrapped, 0)
        if end != len(wrapped):
            raise _DerError("eContent is not a well-formed DER value")
        if tag == 0x24:  # constructed OCTET STRING
            octets = b"".join(_expect(part, 0x04, "eContent") for part in _items(octets))
        elif tag != 0x04:
            raise _DerError("eContent is not an OCTET STRING")
        fields = _items(_one(octets, 0x30, "TSTInfo"))
        policy = _oid(_expect(fields[1], 0x06, "policy"))
        imprint = _items(_expect(fields[2], 0x30, "messageImprint"))
        algorithm = _items(_expect(imprint[0], 0x30, "hashAlgorithm"))
        hash_oid = _oid(_expect(algorithm[0], 0x06, "hashAlgorithm"))
        hashed = _expect(imprint[1], 0x04, "hashedMessage")
        serial = _int(_expect(fields[3], 0x02, "serialNumber"))
        gen_time = _generalized_time(_expect(fields[4], 0x18, "genTime"))
        nonce = next((_int(value) for tag, value, _ in fields[5:] if tag == 0x02), None)
    except (_DerError, IndexError) as exc:
        reason = exc if isinstance(exc, _DerError) else "missing fields"
        raise TimestampError(f"not an RFC 3161 timestamp token: {reason}") from None
    return TokenInfo(gen_time, hash_oid, hashed, serial, nonce, policy)


def token_time(token: bytes) -> datetime:
    """The token's genTime (UTC), as the TSA asserts it; verify the token to trust it."""
    return parse_token(token).gen_time


# ----------------------------------------------------------------------------- request


def _one_line(text: object) -> str:
    return " ".join(str(text).split())


def request_token(tsa_url: str, digest: bytes, *, timeout: float = 30) -> bytes:
    """Ask the TSA at ``tsa_url`` to timestamp ``digest`` (32 bytes of SHA-256); returns
    the TSA's whole DER TimeStampResp (granted), to store as a ``.tsr`` file
    (:func:`token_of` gives the bare token).

    The request carries a random nonce and certReq (so the token embeds the TSA's
    certificate); the answer must echo the nonce and the digest. The token's signature is
    not checked here: use :func:`verify_token`. Raises TimestampError (one line) if the TSA
    cannot be reached, answers an HTTP error or refuses.
    """
    if not isinstance(digest, bytes) or len(digest) != 32:
        raise ValueError("digest must be the 32 bytes of a SHA-256 digest")
    if not tsa_url.lower().startswith(("http://", "https://")):
        raise TimestampError(f"timestamp authority URL must be http(s): {tsa_url}")
    nonce = secrets.randbits(64) | 1 << 63
    request = urllib.request.Request(
        tsa_url,
        data=build_request(digest, nonce),
        method="POST",
        headers={
            "Content-Type": "application/timestamp-query",
            "Accept": "application/timestamp-reply",
        },
    )
    where = f"timestamp authority {tsa_url}"
    try:
        with urllib.request.urlopen(request, timeout=timeout) as reply:
            body = reply.read(MAX_RESPONSE + 1)
    except urllib.error.HTTPError as exc:
        raise TimestampError(f"{where} answered HTTP {exc.code} {_one_line(exc.reason)}") from None
    except urllib.error.URLError as exc:
        raise TimestampError(f"cannot reach {where}: {_one_line(exc.reason)}") from None
    except TimeoutError:
        raise TimestampError(f"{where} did not answer within {timeout:g} s") from None
    except (HTTPException, OSError) as exc:
        raise TimestampError(
            f"cannot reach {where}: {_one_line(exc) or type(exc).__name__}"
        ) from None
    if len(body) > MAX_RESPONSE:
        raise TimestampError(f"{where} answered more than {MAX_RESPONSE} bytes")
    try:
        info = parse_token(parse_response(body))
    except TimestampError as exc:
        raise TimestampError(f"{where}: {exc}") from None
    if info.hash_algorithm != SHA256_OID or info.imprint != digest:
        raise TimestampError(f"{where} timestamped another digest than the one sent")
    if info.nonce != nonce:
        raise TimestampError(f"{where} answered without our nonce (replayed or stale token)")
    return body


# ----------------------------------------------------------------------------- verify


def _openssl_reason(output: str) -> str:
    """The telling part of ``openssl ts -verify``'s complaint, on one line."""
    reasons = []
    for line in output.splitlines():
        line = line.strip()
        if not line or line.startswith(("Verification:", "Using configuration from")):
            continue
        # "<pid>:error:<code>:<lib>:<func>:<reason>:<file>:<line>:<data>"
        parts = line.split(":")
        if len(parts) > 5 and parts[1] == "error":
            reason = parts[5]
            data = ":".join(parts[8:]).strip() if len(parts) > 8 else ""
            line = f"{reason} ({data})" if data else reason
        if line not in reasons:
            reasons.append(line)
    return "; ".join(reasons) or "verification failed"


def _run_openssl_verify(
    token_file: Path,
    is_response: bool,
    imprint: bytes,
    anchor: Path,
    at: datetime,
    *,
    pinned: bool,
    untrusted: Path | None,
) -> str | None:
    """None if ``openssl ts -verify`` accepts the token against ``anchor``; else why not."""
    command = [
        "openssl", "ts", "-verify", "-in", str(token_file),
        "-digest", imprint.hex(), "-CAfile", str(anchor),
        "-attime", str(int(at.timestamp())),
    ]  # fmt: skip
    if not is_response:
        command.append("-token_in")
    if pinned:
        command.append("-partial_chain")
    if untrusted is not None:
        command += ["-untrusted", str(untrusted)]
    try:
        result = subprocess.run(command, capture_output=True, text=True, timeout=60)
    except subprocess.TimeoutExpired:
        return "openssl ts -verify did not finish within 60 s"
    if result.returncode == 0 and "Verification: OK" in result.stdout:
        return None
    return _openssl_reason(result.stderr + "\n" + result.stdout)


def _describe(reason: str, anchor: Path, pinned: bool) -> str:
    lowered = reason.lower()
    if "certificate verify error" in lowered or "verify error" in lowered:
        if pinned:
            return f"the token was not signed with the TSA certificate {anchor}: {reason}"
        return f"the TSA certificate does not chain to the CA {anchor}: {reason}"
    if any(word in lowered for word in ("signature", "digest failure", "ess signing")):
        return f"the token's signature is invalid: {reason}"
    return f"the token does not verify against {anchor}: {reason}"


def verify_token(
    token: bytes,
    digest: bytes,
    *,
    tsa_cert: Path | None = None,
    ca_cert: Path | None = None,
) -> list[str]:
    """Problems with ``token`` (a TimeStampResp or a bare token) as a timestamp of
    ``digest``; ``[]`` if it is valid.

    Checks, offline: that the token's SHA-256 imprint is ``digest`` (here); and with
    ``openssl ts -verify``: its CMS signature, that the signer certificate is bound to it
    (ESS) and usable for timestamping, and that it chains to ``ca_cert`` and/or is
    ``tsa_cert`` itself (pinned, ``-partial_chain``; given with ``ca_cert`` it is also
    offered as an intermediate). Certificates are checked as of the token's genTime
    (``-attime``), so a token stays verifiable after the TSA certificate expires;
    revocation is not checked. At least one of ``ca_cert``/``tsa_cert`` is needed.
    """
    try:
        info = parse_token(token)
    except TimestampError as exc:
        return [str(exc)]
    problems = []
    if info.hash_algorithm != SHA256_OID:
        problems.append(f"the token's imprint uses hash {info.hash_algorithm}, not SHA-256")
    elif info.imprint != digest:
        problems.append(
            f"the token is for another digest: it holds {info.imprint.hex()}, "
            f"expected {digest.hex()}"
        )
    anchors: list[tuple[Path, bool]] = []
    if ca_cert is not None:
        anchors.append((Path(ca_cert), False))
    if tsa_cert is not None:
        anchors.append((Path(tsa_cert), True))
    if not anchors:
        return [*problems, "no CA or TSA certificate given: who signed the token is unchecked"]
    if shutil.which("openssl") is None:
        return [*problems, "openssl is not installed: the token's signature cannot be checked"]
    for anchor, _ in anchors:
        if not anchor.is_file():
            return [*problems, f"certificate {anchor} does not exist"]
    with tempfile.TemporaryDirectory(prefix="linkarchive-ts-") as tmp:
        is_response = _is_response(token)
        token_file = Path(tmp) / ("timestamp.tsr" if is_response else "token.tst")
        token_file.write_bytes(token)
        for anchor, pinned in anchors:
            untrusted = Path(tsa_cert) if tsa_cert is not None and not pinned else None
            reason = _run_openssl_verify(
                token_file,
                is_response,
                info.imprint,
                anchor,
                info.gen_time,
                pinned=pinned,
                untrusted=untrusted,
            )
            if reason is not None:
                problems.append(_describe(reason, anchor, pinned))
    return problems


def stamp_file(tsa_url: str, path: Path, *, timeout: float = 30) -> Path:
    """Get a token for a closed file's SHA-256 and write it beside it as ``<name>.tsr``.

    ``openssl ts -verify -data FILE -in FILE.tsr -CAfile CA`` checks it by hand.
    """
    digest = hashlib.sha256()
    with path.open("rb") as fh:
        for block in iter(lambda: fh.read(1 << 20), b""):
            digest.update(block)
    token = request_token(tsa_url, digest.digest(), timeout=timeout)
    target = path.with_name(path.name + ".tsr")
    partial = target.with_name(target.name + ".partial")
    partial.write_bytes(token)
    partial.replace(target)
    return target
