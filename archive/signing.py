"""The archive's own signing key and WACZ anonymous signatures (standard library + cryptography).

Follows "WACZ Signing and Verification" 0.1.0 (https://specs.webrecorder.net/wacz-auth/0.1.0/),
anonymous signature: ``datapackage-digest.json`` holds ``signedData`` =
``{"hash", "signature", "publicKey", "created", "software"}``. The spec says only "signature
of hash" and "base64 encoded public key (ECDSA)"; the exact bytes are those of its reference
implementation (ArchiveWeb.page's signer, webrecorder/awp-sw ``keystore.ts``) and of the
verifier that checks them (ReplayWeb.page, webrecorder/wabac.js ``certutils.ts``), both
WebCrypto:

* the message is the ``hash`` string itself (``"sha256:<hex>"``) encoded as UTF-8
  (``TextEncoder().encode(hash)``), signed with ECDSA over SHA-256;
* ``signature`` is the WebCrypto (IEEE P1363) form, ``r || s`` as two fixed-width big-endian
  integers, not DER; ``signature`` and ``publicKey`` are standard base64 with padding;
* ``publicKey`` is the DER SubjectPublicKeyInfo (WebCrypto ``spki``);
* the curve is P-256, as the project's evidence requirements name it. The spec names no
  curve; note that ArchiveWeb.page signs with, and ReplayWeb.page imports keys as, P-384
  (WebCrypto refuses an SPKI of another curve there), so switching :data:`CURVE` to
  P-384 is the one change to make if ReplayWeb.page's own check must pass.
  Verification accepts P-256, P-384 and P-521 keys.

The private key lives in one unencrypted PKCS#8 PEM file, mode 0600, its public key beside it
(``<name>.pub.pem``, 0644) for distribution out of band: the signature is "anonymous", its
``publicKey`` proves nothing until compared with the key published that way
(:func:`fingerprint`).
"""

from __future__ import annotations

import base64
import binascii
import hashlib
import os
import re
import stat
from datetime import UTC, datetime
from pathlib import Path
from typing import Any

from cryptography.exceptions import InvalidSignature, UnsupportedAlgorithm
from cryptography.hazmat.primitives import hashes, serialization
from cryptography.hazmat.primitives.asymmetric import ec
from cryptography.hazmat.primitives.asymmetric.utils import (
    decode_dss_signature,
    encode_dss_signature,
)

__all__ = [
    "CURVE",
    "SigningError",
    "digest_document",
    "fingerprint",
    "load_or_create_key",
    "load_public_key",
    "public_key_b64",
    "public_key_path",
    "public_key_pem",
    "sign_digest",
    "verify_signed_data",
]

#: The curve of new keys (P-256, as required; see the module docstring about P-384).
CURVE: ec.EllipticCurve = ec.SECP256R1()
#: Curves accepted when loading a key or verifying a signature.
ACCEPTED_CURVES = ("secp256r1", "secp384r1", "secp521r1")
#: The properties an anonymous ``signedData`` may hold (the spec forbids any other).
ANONYMOUS_FIELDS = ("hash", "created", "software", "version", "signature", "publicKey")
REQUIRED_FIELDS = ("hash", "signature", "publicKey", "created", "software")
HASH_PATTERN = re.compile(r"sha256:[0-9a-f]{64}")
_KEY_FILE_MAX = 64 * 1024

PublicKey = ec.EllipticCurvePublicKey


class SigningError(Exception):
    """The signing key cannot be created, read or used (one line, for the user)."""


# ----------------------------------------------------------------------------- key files


def public_key_path(private_path: Path) -> Path:
    """Where the public PEM of ``private_path`` lives: ``key.pem`` -> ``key.pub.pem``."""
    private_path = Path(private_path)
    stem = private_path.stem if private_path.suffix == ".pem" else private_path.name
    return private_path.with_name(f"{stem}.pub.pem")


def _check_curve(key: ec.EllipticCurvePrivateKey | PublicKey, where: str) -> None:
    if key.curve.name not in ACCEPTED_CURVES:
        raise SigningError(f"{where}: unsupported curve {key.curve.name}")


def _read_private_key(path: Path) -> ec.EllipticCurvePrivateKey:
    """Load an existing private key, refusing a file others may read."""
    try:
        fd = os.open(path, os.O_RDONLY)
    except OSError as exc:
        raise SigningError(f"cannot open signing key {path}: {exc.strerror}") from None
    with os.fdopen(fd, "rb") as fh:
        info = os.fstat(fh.fileno())
        if not stat.S_ISREG(info.st_mode):
            raise SigningError(f"signing key {path} is not a regular file")
        mode = stat.S_IMODE(info.st_mode)
        if mode & 0o077:
            raise SigningError(
                f"signing key {path} has mode {mode:04o}, which lets group/other read it: "
                f"run chmod 600 {path} (and consider the key exposed)"
            )
        data = fh.read(_KEY_FILE_MAX + 1)
    if len(data) > _KEY_FILE_MAX:
        raise SigningError(f"signing key {path} is too large to be a key")
    try:
        key = serialization.load_pem_private_key(data, password=None)
    except (ValueError, TypeError, UnsupportedAlgorithm) as exc:
        raise SigningError(
            f"signing key {path} is not an unencrypted PEM private key: {exc}"
        ) from None
    if not isinstance(key, ec.EllipticCurvePrivateKey):
        raise SigningError(f"signing key {path} is not an ECDSA key")
    _check_curve(key, f"signing key {path}")
    return key


def _write_new(path: Path, data: bytes, mode: int) -> None:
    """Write ``data`` to a new file created with ``mode`` from the start (never wider)."""
    fd = os.open(path, os.O_CREAT | os.O_EXCL | os.O_WRONLY, mode)
    try:
        os.fchmod(fd, mode)  # exactly ``mode``, whatever the umask
        view = memoryview(data)
        while view:
            view = view[os.write(fd, view) :]
        os.fsync(fd)
    finally:
        os.close(fd)


def create_secret_file(path: Path, data: bytes, mode: int = 0o600) -> bool:
    """Create ``path`` holding ``data`` with ``mode`` from the start; False if it exists.

    The data is written to a temporary name (O_EXCL) and hard-linked into place, so
    ``path`` never names a partly written file, and of processes racing to create it one
    wins.
    """
    tmp = path.with_name(f".{path.name}.{os.getpid()}.tmp")
    tmp.unlink(missing_ok=True)
    _write_new(tmp, data, mode)
    try:
        os.link(tmp, path)
    except FileExistsError:
        return False
    except OSError:  # no hard links on this file system: create in place instead
        try:
            _write_new(path, data, mode)
        except FileExistsError:
            return False
    finally:
        tmp.unlink(missing_ok=True)
    dir_fd = os.open(path.parent, os.O_RDONLY)
    try:
        os.fsync(dir_fd)  # the new name survives a crash
    except OSError:
        pass
    finally:
        os.close(dir_fd)
    return True


def _create_private_key(path: Path) -> ec.EllipticCurvePrivateKey | None:
    """Create a key at ``path``; None if another process created one meanwhile."""
    key = ec.generate_private_key(CURVE)
    pem = key.private_bytes(
        serialization.Encoding.PEM,
        serialization.PrivateFormat.PKCS8,
        serialization.NoEncryption(),
    )
    return key if create_secret_file(path, pem) else None


def _ensure_public_file(key: ec.EllipticCurvePrivateKey, private_path: Path) -> None:
    """Write ``<name>.pub.pem`` (0644) if missing; refuse one that names another key."""
    path = public_key_path(private_path)
    pem = public_key_pem(key).encode("ascii")
    try:
        existing = path.read_bytes()
    except FileNotFoundError:
        tmp = path.with_name(f".{path.name}.{os.getpid()}.tmp")
        tmp.unlink(missing_ok=True)
        _write_new(tmp, pem, 0o644)
        os.replace(tmp, path)
        return
    try:
        published = load_public_key(existing)
    except SigningError:
        published = None
    if published is None or _spki(published) != _spki(key.public_key()):
        raise SigningError(
            f"{path} is not the public key of {private_path}: "
            "remove it to have it written again, or restore the matching private key"
        )


def load_or_create_key(private_path: Path) -> ec.EllipticCurvePrivateKey:
    """The archive's signing key, created (P-256, :data:`CURVE`) on first use.

    The private key is an unencrypted PKCS#8 PEM created with mode 0600 (never readable by
    others, not even briefly); its public PEM is written beside it
    (:func:`public_key_path`, 0644). An existing private key file whose mode grants any
    group/other access is refused, as is a public file that does not match it.
    """
    private_path = Path(private_path)
    if not private_path.parent.exists():
        private_path.parent.mkdir(parents=True, mode=0o700)
    key = None
    if not private_path.exists():
        key = _create_private_key(private_path)
    if key is None:
        key = _read_private_key(private_path)
    _ensure_public_file(key, private_path)
    return key


def _spki(public_key: PublicKey) -> bytes:
    return public_key.public_bytes(
        serialization.Encoding.DER, serialization.PublicFormat.SubjectPublicKeyInfo
    )


def _public(key: ec.EllipticCurvePrivateKey | PublicKey) -> PublicKey:
    return key.public_key() if isinstance(key, ec.EllipticCurvePrivateKey) else key


def public_key_pem(key: ec.EllipticCurvePrivateKey | PublicKey) -> str:
    """The public key as PEM SubjectPublicKeyInfo (``-----BEGIN PUBLIC KEY-----``)."""
    return (
        _public(key)
        .public_bytes(serialization.Encoding.PEM, serialization.PublicFormat.SubjectPublicKeyInfo)
        .decode("ascii")
    )


def public_key_b64(key: ec.EllipticCurvePrivateKey | PublicKey) -> str:
    """The public key as base64 DER SubjectPublicKeyInfo: the ``publicKey`` field."""
    return base64.b64encode(_spki(_public(key))).decode("ascii")


def fingerprint(public_key: ec.EllipticCurvePrivateKey | PublicKey) -> str:
    """``sha256:<hex>`` of the DER SubjectPublicKeyInfo (``openssl pkey -pubin -outform DER
    | openssl dgst -sha256`` gives the same hex)."""
    return "sha256:" + hashlib.sha256(_spki(_public(public_key))).hexdigest()


def load_public_key(path_or_pem: Path | str | bytes) -> PublicKey:
    """An ECDSA public key from a file (Path, or a str naming an existing file), PEM text,
    DER bytes, or base64 DER SubjectPublicKeyInfo (a ``publicKey`` field)."""
    if isinstance(path_or_pem, Path) or (
        isinstance(path_or_pem, str)
        and "-----BEGIN" not in path_or_pem
        and os.path.isfile(path_or_pem)
    ):
        try:
            data = Path(path_or_pem).read_bytes()
        except OSError as exc:
            raise SigningError(f"cannot read public key {path_or_pem}: {exc.strerror}") from None
    elif isinstance(path_or_pem, str):
        data = path_or_pem.encode("utf-8", "replace")
    else:
        data = bytes(path_or_pem)
    try:
        if b"-----BEGIN" in data:
            key = serialization.load_pem_public_key(data)
        else:
            try:
                key = serialization.load_der_public_key(data)
            except ValueError:
                key = serialization.load_der_public_key(_b64(data.decode("ascii").strip()))
    except (ValueError, UnicodeDecodeError, UnsupportedAlgorithm, binascii.Error):
        raise SigningError("not a PEM, DER or base64 DER public key") from None
    if not isinstance(key, ec.EllipticCurvePublicKey):
        raise SigningError("the public key is not an ECDSA key")
    _check_curve(key, "public key")
    return key


# ----------------------------------------------------------------------------- signatures


def _b64(text: str) -> bytes:
    """Strict standard base64 (alphabet ``+/``, padded); binascii.Error otherwise."""
    return base64.b64decode(text.encode("ascii"), validate=True)


def _width(curve: ec.EllipticCurve) -> int:
    return (curve.key_size + 7) // 8


def _format_created(created: datetime) -> str:
    """RFC 3339 UTC to the second (naive = UTC), the form of ``datapackage.json``'s
    ``created``: py-wacz requires the two to be equal."""
    moment = created.replace(tzinfo=UTC) if created.tzinfo is None else created.astimezone(UTC)
    return moment.strftime("%Y-%m-%dT%H:%M:%SZ")


def sign_digest(
    key: ec.EllipticCurvePrivateKey, hash_value: str, *, created: datetime, software: str
) -> dict[str, str]:
    """The anonymous ``signedData`` for ``hash_value`` (``"sha256:<hex>"`` of
    ``datapackage.json``).

    Signs the UTF-8 bytes of ``hash_value`` with ECDSA/SHA-256; ``signature`` is base64 of
    ``r || s`` (IEEE P1363, as WebCrypto). ``created`` must be the package's own
    ``created`` (py-wacz rejects a signature whose ``created`` differs).
    """
    if not isinstance(hash_value, str) or not HASH_PATTERN.fullmatch(hash_value):
        raise SigningError(f"not a sha256:<64 hex> hash: {hash_value!r}")
    if not isinstance(key, ec.EllipticCurvePrivateKey):
        raise SigningError("the signing key is not an ECDSA private key")
    _check_curve(key, "signing key")
    der = key.sign(hash_value.encode("utf-8"), ec.ECDSA(hashes.SHA256()))
    r, s = decode_dss_signature(der)
    width = _width(key.curve)
    raw = r.to_bytes(width, "big") + s.to_bytes(width, "big")
    return {
        "hash": hash_value,
        "signature": base64.b64encode(raw).decode("ascii"),
        "publicKey": public_key_b64(key),
        "created": _format_created(created),
        "software": software,
    }


def digest_document(
    manifest: bytes, key: ec.EllipticCurvePrivateKey, *, created: datetime, software: str
) -> dict[str, Any]:
    """The whole signed ``datapackage-digest.json`` for the bytes of ``datapackage.json``."""
    hash_value = "sha256:" + hashlib.sha256(manifest).hexdigest()
    return {
        "path": "datapackage.json",
        "hash": hash_value,
        "signedData": sign_digest(key, hash_value, created=created, software=software),
    }


def _signature_rs(raw: bytes, curve: ec.EllipticCurve) -> tuple[int, int] | None:
    """``(r, s)`` from P1363 ``r || s`` or, leniently, from DER; None if neither."""
    width = _width(curve)
    if len(raw) == 2 * width:
        return int.from_bytes(raw[:width], "big"), int.from_bytes(raw[width:], "big")
    try:
        r, s = decode_dss_signature(raw)
    except ValueError:
        return None
    return r, s


def verify_signed_data(
    signed: Any, expected_hash: str, trusted_public_key: PublicKey | None = None
) -> list[str]:
    """Problems with an anonymous ``signedData``; ``[]`` if it is valid.

    Checks its form (the spec's fields only, all strings, strict base64, an ECDSA key, an
    ISO 8601 ``created``), that its ``hash`` is ``expected_hash`` (the hash of the package's
    ``datapackage.json``), that ``signature`` verifies over that hash with ``publicKey``
    (``r || s``; DER also accepted), and, given ``trusted_public_key``, that ``publicKey``
    is that key: without it a valid signature only shows the package is unchanged since
    someone holding *some* key signed it.
    """
    if not isinstance(signed, dict):
        return ["signedData is not a JSON object"]
    problems: list[str] = []
    if "publicKey" not in signed and "domainCert" in signed:
        return [
            "signedData is a domain-identity signature (domainCert), not an anonymous one: "
            "verify it with authsign"
        ]
    extra = sorted(set(signed) - set(ANONYMOUS_FIELDS))
    if extra:
        problems.append(f"signedData has properties the spec does not allow: {', '.join(extra)}")
    for name in REQUIRED_FIELDS:
        if name not in signed:
            problems.append(f"signedData has no {name}")
        elif not isinstance(signed[name], str):
            problems.append(f"signedData {name} is not a string")
    if "version" in signed and not isinstance(signed["version"], str):
        problems.append("signedData version is not a string")
    text = {k: v for k, v in signed.items() if isinstance(v, str)}

    if "hash" in text and text["hash"] != expected_hash:
        problems.append(f"signedData hash {text['hash']} is not the package's hash {expected_hash}")
    if "created" in text:
        try:
            datetime.fromisoformat(text["created"])
        except ValueError:
            problems.append(f"signedData created is not an ISO 8601 date: {text['created']!r}")

    public_key = None
    if "publicKey" in text:
        try:
            public_key = serialization.load_der_public_key(_b64(text["publicKey"]))
        except (binascii.Error, UnicodeEncodeError):
            problems.append("signedData publicKey is not valid base64")
        except (ValueError, UnsupportedAlgorithm):
            problems.append("signedData publicKey is not a DER SubjectPublicKeyInfo")
        else:
            if not isinstance(public_key, ec.EllipticCurvePublicKey):
                problems.append("signedData publicKey is not an ECDSA key")
                public_key = None
            elif public_key.curve.name not in ACCEPTED_CURVES:
                problems.append(
                    f"signedData publicKey uses unsupported curve {public_key.curve.name}"
                )
                public_key = None

    raw = None
    if "signature" in text:
        try:
            raw = _b64(text["signature"])
        except (binascii.Error, UnicodeEncodeError):
            problems.append("signedData signature is not valid base64")

    if public_key is not None and raw is not None and "hash" in text:
        rs = _signature_rs(raw, public_key.curve)
        if rs is None:
            problems.append(
                f"signedData signature is neither r||s for {public_key.curve.name} nor DER"
            )
        else:
            try:
                public_key.verify(
                    encode_dss_signature(*rs),
                    text["hash"].encode("utf-8"),
                    ec.ECDSA(hashes.SHA256()),
                )
            except InvalidSignature:
                problems.append(
                    "signedData signature does not verify: not made by publicKey over this hash"
                )

    trusted = trusted_public_key
    if (
        public_key is not None
        and trusted is not None
        and _spki(public_key) != _spki(_public(trusted))
    ):
        problems.append(
            f"signedData publicKey {fingerprint(public_key)} is not the trusted key "
            f"{fingerprint(trusted)}"
        )
    return problems
