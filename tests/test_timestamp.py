"""RFC 3161 timestamps (archive.timestamp) against a real local TSA (tests/tsa.py)."""

from __future__ import annotations

import hashlib
import shutil
import subprocess
from collections.abc import Iterator
from datetime import UTC, datetime, timedelta
from pathlib import Path

import pytest
from conftest import free_port
from tsa import LocalTSA

from archive.timestamp import (
    SHA256_OID,
    TimestampError,
    build_request,
    parse_token,
    request_token,
    token_of,
    token_time,
    verify_token,
)

pytestmark = pytest.mark.skipif(shutil.which("openssl") is None, reason="needs the openssl CLI")

DIGEST = hashlib.sha256(b"datapackage.json of a package").digest()
OTHER = hashlib.sha256(b"something else").digest()


@pytest.fixture(autouse=True)
def _no_proxy(monkeypatch: pytest.MonkeyPatch) -> None:
    """Loopback only: never through a proxy from the environment."""
    for name in ("http_proxy", "HTTP_PROXY", "https_proxy", "HTTPS_PROXY", "all_proxy"):
        monkeypatch.delenv(name, raising=False)
    monkeypatch.setenv("no_proxy", "127.0.0.1,localhost")


@pytest.fixture(scope="module")
def tsa() -> Iterator[LocalTSA]:
    with LocalTSA() as authority:
        yield authority


@pytest.fixture(scope="module")
def other_tsa() -> Iterator[LocalTSA]:
    with LocalTSA("other authority") as authority:
        yield authority


@pytest.fixture(scope="module")
def token(tsa: LocalTSA) -> bytes:
    """The whole TimeStampResp, as stored (``.tsr``)."""
    return request_token(tsa.url, DIGEST, timeout=30)


def test_request_is_what_openssl_reads(tmp_path: Path) -> None:
    query = tmp_path / "query.tsq"
    query.write_bytes(build_request(DIGEST, 0x8123456789ABCDEF))
    text = subprocess.run(
        ["openssl", "ts", "-query", "-in", str(query), "-text"],
        capture_output=True, text=True, check=True, timeout=60,
    ).stdout  # fmt: skip
    assert "Hash Algorithm: sha256" in text
    assert "Nonce: 0x8123456789ABCDEF" in text
    assert "Certificate required: yes" in text
    compact = "".join(text.split()).lower()
    assert DIGEST[:8].hex() in compact.replace("-", "")


def test_token_is_obtained_and_verifies(tsa: LocalTSA, token: bytes) -> None:
    now = datetime.now(UTC)
    assert abs(token_time(token) - now) < timedelta(minutes=2)
    info = parse_token(token)
    assert info.hash_algorithm == SHA256_OID and info.imprint == DIGEST
    assert info.nonce is not None and info.policy == "1.3.6.1.4.1.99999.1.1"
    assert verify_token(token, DIGEST, ca_cert=tsa.ca_cert) == []
    assert verify_token(token, DIGEST, tsa_cert=tsa.tsa_cert) == []
    assert verify_token(token, DIGEST, ca_cert=tsa.ca_cert, tsa_cert=tsa.tsa_cert) == []
    # The bare TimeStampToken (as other tools store it) reads and verifies the same.
    bare = token_of(token)
    assert bare != token and token.endswith(bare) and token_of(bare) == bare
    assert parse_token(bare) == info
    assert verify_token(bare, DIGEST, ca_cert=tsa.ca_cert) == []
    # Two requests, two tokens (fresh nonce and serial).
    second = request_token(tsa.url, DIGEST)
    assert parse_token(second).nonce != info.nonce
    assert parse_token(second).serial != info.serial


def test_token_is_what_openssl_verifies(tsa: LocalTSA, token: bytes, tmp_path: Path) -> None:
    """The by-hand check for docs/EVIDENCE.md."""
    path = tmp_path / "timestamp.tsr"
    path.write_bytes(token)
    bare = tmp_path / "timestamp.tst"
    bare.write_bytes(token_of(token))
    data = tmp_path / "data"
    data.write_bytes(b"datapackage.json of a package")
    for stored in ([str(path)], [str(bare), "-token_in"]):
        for how in (["-digest", DIGEST.hex()], ["-data", str(data)]):
            result = subprocess.run(
                ["openssl", "ts", "-verify", "-in", *stored, *how, "-CAfile", str(tsa.ca_cert)],
                capture_output=True, text=True, timeout=60,
            )  # fmt: skip
            assert result.returncode == 0 and "Verification: OK" in result.stdout, result.stderr
        text = subprocess.run(
            ["openssl", "ts", "-reply", "-in", *stored, "-text"],
            capture_output=True, text=True, check=True, timeout=60,
        ).stdout  # fmt: skip
        assert "Time stamp:" in text and "TSA: DirName:" in text


def test_token_for_another_digest_is_detected(tsa: LocalTSA, token: bytes) -> None:
    (problem,) = verify_token(token, OTHER, ca_cert=tsa.ca_cert)
    assert "another digest" in problem and OTHER.hex() in problem and DIGEST.hex() in problem


def test_wrong_ca_or_tsa_certificate_is_detected(
    token: bytes, other_tsa: LocalTSA, tsa: LocalTSA
) -> None:
    (problem,) = verify_token(token, DIGEST, ca_cert=other_tsa.ca_cert)
    assert "does not chain to the CA" in problem and str(other_tsa.ca_cert) in problem
    (problem,) = verify_token(token, DIGEST, tsa_cert=other_tsa.tsa_cert)
    assert "not signed with the TSA certificate" in problem
    # A right CA but the wrong pinned TSA certificate is still a problem.
    (problem,) = verify_token(token, DIGEST, ca_cert=tsa.ca_cert, tsa_cert=other_tsa.tsa_cert)
    assert "not signed with the TSA certificate" in problem
    assert "no CA or TSA certificate" in verify_token(token, DIGEST)[0]


def test_tampered_token_is_detected(tsa: LocalTSA, token: bytes) -> None:
    tampered = bytearray(token)
    tampered[-2] ^= 0x01  # inside the signature value, the last field of the response
    problems = verify_token(bytes(tampered), DIGEST, ca_cert=tsa.ca_cert)
    assert problems and "signature is invalid" in problems[0]
    assert "not an RFC 3161 timestamp token" in verify_token(b"\x30\x03abc", DIGEST)[0]
    with pytest.raises(TimestampError):
        token_time(b"garbage")


def test_tsa_down_is_one_clear_error() -> None:
    url = f"http://127.0.0.1:{free_port()}/tsa"
    with pytest.raises(TimestampError) as info:
        request_token(url, DIGEST, timeout=5)
    message = str(info.value)
    assert message.startswith(f"cannot reach timestamp authority {url}: ")
    assert "refused" in message.lower() and "\n" not in message


def test_http_error_and_refusal_are_clear_errors() -> None:
    with LocalTSA("picky", digests="sha512") as picky:
        with pytest.raises(TimestampError) as info:
            request_token(picky.url, DIGEST)
        message = str(info.value)
        assert "refused the request: rejection (2)" in message and "badAlg" in message
        assert "\n" not in message
        picky.http_error = 503
        with pytest.raises(TimestampError, match=r"answered HTTP 503 Service Unavailable$"):
            request_token(picky.url, DIGEST)
    with pytest.raises(ValueError):
        request_token("http://127.0.0.1:9/", b"short")
    with pytest.raises(TimestampError, match="must be http"):
        request_token("file:///etc/passwd", DIGEST)
