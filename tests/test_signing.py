"""The archive's signing key and WACZ anonymous signatures (archive.signing)."""

from __future__ import annotations

import base64
import hashlib
import json
import os
import shutil
import subprocess
import sys
import zipfile
from datetime import UTC, datetime
from pathlib import Path
from typing import Any

import pytest
from cryptography.hazmat.primitives import hashes, serialization
from cryptography.hazmat.primitives.asymmetric import ec
from cryptography.hazmat.primitives.asymmetric.utils import encode_dss_signature

from archive import RecordFactory, RotatingWarcWriter, iter_records
from archive.signing import (
    SigningError,
    digest_document,
    fingerprint,
    load_or_create_key,
    load_public_key,
    public_key_b64,
    public_key_path,
    public_key_pem,
    sign_digest,
    verify_signed_data,
)
from archive.wacz import Member, Page, write_wacz

WACZ = Path(sys.executable).with_name("wacz")
WHEN = datetime(2024, 5, 1, 9, 30, 15, tzinfo=UTC)
HASH = "sha256:" + hashlib.sha256(b"datapackage").hexdigest()
OTHER_HASH = "sha256:" + hashlib.sha256(b"another datapackage").hexdigest()


@pytest.fixture
def key(tmp_path: Path) -> ec.EllipticCurvePrivateKey:
    return load_or_create_key(tmp_path / "keys" / "archive.pem")


@pytest.fixture
def other_key(tmp_path: Path) -> ec.EllipticCurvePrivateKey:
    return load_or_create_key(tmp_path / "other" / "archive.pem")


def signed(key: ec.EllipticCurvePrivateKey, hash_value: str = HASH) -> dict[str, str]:
    return sign_digest(key, hash_value, created=WHEN, software="linkarchive test")


# --- key files --------------------------------------------------------------------------


def test_key_is_created_private_and_reused(tmp_path: Path) -> None:
    path = tmp_path / "keys" / "archive.pem"
    old = os.umask(0)  # the file mode must not depend on a permissive umask
    try:
        key = load_or_create_key(path)
    finally:
        os.umask(old)
    assert path.stat().st_mode & 0o777 == 0o600
    assert path.parent.stat().st_mode & 0o777 == 0o700
    public = public_key_path(path)
    assert public == tmp_path / "keys" / "archive.pub.pem"
    assert public.stat().st_mode & 0o777 == 0o644
    assert public.read_text() == public_key_pem(key)
    assert path.read_text().startswith("-----BEGIN PRIVATE KEY-----")  # PKCS#8, unencrypted
    assert key.curve.name == "secp256r1"
    assert not list(path.parent.glob(".*.tmp"))

    again = load_or_create_key(path)
    assert again.private_numbers() == key.private_numbers()
    public.unlink()  # a lost public file is written again
    load_or_create_key(path)
    assert load_public_key(public).public_numbers() == key.public_key().public_numbers()


@pytest.mark.parametrize("mode", [0o644, 0o640, 0o604])
def test_a_private_key_others_may_read_is_refused(tmp_path: Path, mode: int) -> None:
    path = tmp_path / "archive.pem"
    load_or_create_key(path)
    path.chmod(mode)
    with pytest.raises(SigningError, match=f"mode {mode:04o}.*chmod 600") as info:
        load_or_create_key(path)
    assert "\n" not in str(info.value)


def test_a_public_file_of_another_key_is_refused(tmp_path: Path) -> None:
    path = tmp_path / "archive.pem"
    load_or_create_key(path)
    other = load_or_create_key(tmp_path / "other.pem")
    public_key_path(path).write_text(public_key_pem(other))
    with pytest.raises(SigningError, match="is not the public key of"):
        load_or_create_key(path)


def test_an_existing_p256_key_is_used(tmp_path: Path) -> None:
    path = tmp_path / "p256.pem"
    p256 = ec.generate_private_key(ec.SECP256R1())
    fd = os.open(path, os.O_CREAT | os.O_EXCL | os.O_WRONLY, 0o600)
    with os.fdopen(fd, "wb") as fh:
        fh.write(
            p256.private_bytes(
                serialization.Encoding.PEM,
                serialization.PrivateFormat.PKCS8,
                serialization.NoEncryption(),
            )
        )
    key = load_or_create_key(path)
    data = signed(key)
    assert len(base64.b64decode(data["signature"])) == 64
    assert verify_signed_data(data, HASH, p256.public_key()) == []


def test_garbage_key_file_is_refused(tmp_path: Path) -> None:
    path = tmp_path / "archive.pem"
    fd = os.open(path, os.O_CREAT | os.O_WRONLY, 0o600)
    os.write(fd, b"not a key")
    os.close(fd)
    with pytest.raises(SigningError, match="not an unencrypted PEM private key"):
        load_or_create_key(path)


def test_public_key_forms(key: ec.EllipticCurvePrivateKey, tmp_path: Path) -> None:
    numbers = key.public_key().public_numbers()
    pem = public_key_pem(key)
    published = public_key_path(tmp_path / "keys" / "archive.pem")
    for form in (pem, pem.encode(), public_key_b64(key), published, str(published)):
        assert load_public_key(form).public_numbers() == numbers
    spki = base64.b64decode(public_key_b64(key))
    assert (
        fingerprint(key)
        == fingerprint(key.public_key())
        == ("sha256:" + hashlib.sha256(spki).hexdigest())
    )
    with pytest.raises(SigningError):
        load_public_key("not a key")
    with pytest.raises(SigningError, match="cannot read"):
        load_public_key(tmp_path / "missing.pem")


# --- signatures -------------------------------------------------------------------------


def test_signed_data_has_the_spec_fields_and_verifies(key: ec.EllipticCurvePrivateKey) -> None:
    data = signed(key)
    assert set(data) == {"hash", "signature", "publicKey", "created", "software"}
    assert data["hash"] == HASH
    assert data["created"] == "2024-05-01T09:30:15Z"
    assert data["software"] == "linkarchive test"
    assert data["publicKey"] == public_key_b64(key)
    assert len(base64.b64decode(data["signature"], validate=True)) == 64  # P-256 r || s
    assert verify_signed_data(data, HASH) == []
    assert verify_signed_data(data, HASH, key.public_key()) == []
    assert verify_signed_data(json.loads(json.dumps(data)), HASH, key.public_key()) == []
    with pytest.raises(SigningError, match="sha256"):
        sign_digest(key, "md5:abc", created=WHEN, software="x")


def test_an_independent_verifier_accepts_it(key: ec.EllipticCurvePrivateKey) -> None:
    """What a WebCrypto verifier (wabac.js certutils) does: SPKI imported as ECDSA,
    verify of the raw r || s over TextEncoder().encode(hash), SHA-256."""
    data = signed(key)
    public = serialization.load_der_public_key(base64.b64decode(data["publicKey"]))
    assert isinstance(public, ec.EllipticCurvePublicKey)
    assert public.curve.name == "secp256r1"
    raw = base64.b64decode(data["signature"])
    r, s = int.from_bytes(raw[:32], "big"), int.from_bytes(raw[32:], "big")
    public.verify(encode_dss_signature(r, s), data["hash"].encode(), ec.ECDSA(hashes.SHA256()))


# The by-hand check for docs/EVIDENCE.md: only openssl and POSIX tools.
BY_HAND = r"""
set -eu
printf '%s' "$SIG_HASH" > message.txt
printf '%s' "$SIG_PUBLIC_KEY" | openssl base64 -d -A > signer.der
openssl pkey -pubin -inform DER -in signer.der -out signer.pem
openssl pkey -pubin -in signer.pem -outform DER | openssl dgst -sha256 -r | cut -d' ' -f1
printf '%s' "$SIG_SIGNATURE" | openssl base64 -d -A > signature.raw
N=$(( $(wc -c < signature.raw) / 2 ))
R=$(head -c "$N" signature.raw | od -An -v -tx1 | tr -d ' \n')
S=$(tail -c "$N" signature.raw | od -An -v -tx1 | tr -d ' \n')
printf 'asn1=SEQUENCE:sig\n[sig]\nr=INTEGER:0x%s\ns=INTEGER:0x%s\n' "$R" "$S" > signature.cnf
openssl asn1parse -genconf signature.cnf -noout -out signature.der
openssl dgst -sha256 -verify signer.pem -signature signature.der message.txt
"""


@pytest.mark.parametrize("tampered", [False, True])
def test_openssl_by_hand_verifies_it(
    key: ec.EllipticCurvePrivateKey, tmp_path: Path, tampered: bool
) -> None:
    if shutil.which("openssl") is None:
        pytest.skip("openssl CLI not installed")
    data = signed(key)
    env = dict(os.environ, SIG_HASH=OTHER_HASH if tampered else data["hash"],
               SIG_PUBLIC_KEY=data["publicKey"], SIG_SIGNATURE=data["signature"])  # fmt: skip
    result = subprocess.run(
        ["sh", "-c", BY_HAND], cwd=tmp_path, env=env, capture_output=True, text=True, timeout=60
    )
    lines = result.stdout.split("\n")
    assert "sha256:" + lines[0] == fingerprint(key)
    if tampered:
        assert result.returncode != 0 and "Verification failure" in result.stdout
    else:
        assert result.returncode == 0, result.stderr
        assert "Verified OK" in result.stdout


def with_field(data: dict[str, str], field: str, value: str) -> dict[str, str]:
    return {**data, field: value}


def test_problems_are_detected(
    key: ec.EllipticCurvePrivateKey, other_key: ec.EllipticCurvePrivateKey
) -> None:
    good = signed(key)
    by_other = signed(other_key)

    def problems(data: Any, expected: str = HASH) -> str:
        found = verify_signed_data(data, expected, key.public_key())
        assert found, "expected a problem"
        assert all("\n" not in p for p in found)
        return " | ".join(found)

    # The package changed after signing: its hash is no longer the signed one.
    assert "is not the package's hash" in problems(good, OTHER_HASH)
    # Someone edited the signed hash: neither the package nor the signature agree.
    tampered = problems(with_field(good, "hash", OTHER_HASH))
    assert "is not the package's hash" in tampered and "does not verify" in tampered
    # Signature made by another key, but our public key left in place.
    assert "does not verify" in problems(with_field(good, "signature", by_other["signature"]))
    # A whole valid signature by another key: only the trusted key tells.
    assert verify_signed_data(by_other, HASH) == []
    swapped = problems(by_other)
    assert "is not the trusted key" in swapped and fingerprint(other_key) in swapped
    # Our signature with another key's publicKey.
    assert "does not verify" in problems(with_field(good, "publicKey", by_other["publicKey"]))
    # Malformed fields.
    assert "signature is not valid base64" in problems(
        with_field(good, "signature", "!!not base64")
    )
    assert "signature is not valid base64" in problems(with_field(good, "signature", "abc"))
    assert "publicKey is not valid base64" in problems(with_field(good, "publicKey", "%%%"))
    assert "not a DER SubjectPublicKeyInfo" in problems(
        with_field(good, "publicKey", base64.b64encode(b"junk").decode())
    )
    assert "neither r||s" in problems(
        with_field(good, "signature", base64.b64encode(b"x" * 10).decode())
    )
    assert "created is not an ISO 8601 date" in problems(with_field(good, "created", "yesterday"))
    assert "has no signature" in problems({k: v for k, v in good.items() if k != "signature"})
    assert "software is not a string" in problems({**good, "software": 3})
    assert "does not allow: domain" in problems({**good, "domain": "example.org"})
    assert "not a JSON object" in problems([good])
    assert "domain-identity" in problems({"hash": HASH, "domainCert": "..."})


def test_a_der_signature_is_accepted(key: ec.EllipticCurvePrivateKey) -> None:
    """Some verifiers (and authsign's domain signatures) use DER: accepted when verifying."""
    der = key.sign(HASH.encode(), ec.ECDSA(hashes.SHA256()))
    data = with_field(signed(key), "signature", base64.b64encode(der).decode())
    assert verify_signed_data(data, HASH, key.public_key()) == []


# --- in a WACZ --------------------------------------------------------------------------


def small_wacz(tmp_path: Path) -> Path:
    factory = RecordFactory()
    writer = RotatingWarcWriter(tmp_path / "warcs", factory=factory, fsync=False)
    url = "http://127.0.0.1:9/report"
    writer.write(
        factory.response(url, 200, "OK", "HTTP/1.1", [("Content-Type", "text/html")],
                         b"<html><title>report</title></html>")
    )  # fmt: skip
    (source,) = writer.close()
    members = [Member(source, loc.offset, loc.length) for loc, _ in iter_records(source)]
    target = tmp_path / "signed.wacz"
    write_wacz(target, members, [Page(url, WHEN, "report")], title="signed", created=WHEN)
    return target


def replace_digest(path: Path, make: Any) -> dict[str, Any]:
    """Rewrite the package's datapackage-digest.json with ``make(manifest, datapackage)``."""
    rewritten = path.with_suffix(".tmp")
    with zipfile.ZipFile(path) as src, zipfile.ZipFile(rewritten, "w") as dst:
        manifest = src.read("datapackage.json")
        document = make(manifest, json.loads(manifest))
        for info in src.infolist():
            if info.filename == "datapackage-digest.json":
                dst.writestr(info, json.dumps(document, indent=2) + "\n")
            else:
                dst.writestr(info, src.read(info.filename))
    rewritten.replace(path)
    return document


def wacz_validate(path: Path) -> subprocess.CompletedProcess[str]:
    if not WACZ.exists():
        pytest.skip("py-wacz is not installed (pip install wacz)")
    return subprocess.run(
        [str(WACZ), "validate", "-f", str(path)], capture_output=True, text=True, timeout=300
    )


def test_signed_wacz_passes_py_wacz(key: ec.EllipticCurvePrivateKey, tmp_path: Path) -> None:
    path = small_wacz(tmp_path)

    def sign(manifest: bytes, package: dict[str, Any]) -> dict[str, Any]:
        created = datetime.fromisoformat(package["created"])
        return digest_document(manifest, key, created=created, software=package["software"])

    document = replace_digest(path, sign)
    result = wacz_validate(path)
    assert result.returncode == 0, result.stdout + result.stderr
    assert "Validation succeeded" in result.stdout
    assert "Has signature" in result.stdout  # py-wacz saw signedData (it checks only created)
    with zipfile.ZipFile(path) as zf:
        manifest = zf.read("datapackage.json")
        stored = json.loads(zf.read("datapackage-digest.json"))
    assert stored == document
    assert stored["hash"] == "sha256:" + hashlib.sha256(manifest).hexdigest()
    assert stored["signedData"]["created"] == json.loads(manifest)["created"]
    assert verify_signed_data(stored["signedData"], stored["hash"], key.public_key()) == []


def test_py_wacz_rejects_a_signature_of_another_creation_time(
    key: ec.EllipticCurvePrivateKey, tmp_path: Path
) -> None:
    """py-wacz requires signedData.created == datapackage.json created."""
    path = small_wacz(tmp_path)
    replace_digest(
        path,
        lambda manifest, _: digest_document(
            manifest, key, created=datetime(2001, 1, 1, tzinfo=UTC), software="x"
        ),
    )
    result = wacz_validate(path)
    assert result.returncode != 0
    assert "signed timestamp != created timestamp" in result.stdout
