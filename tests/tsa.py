"""A real RFC 3161 timestamp authority on 127.0.0.1, for tests, made with the openssl CLI.

``LocalTSA`` creates in a temporary directory a root CA, a TSA certificate it issues
(extendedKeyUsage critical timeStamping, as RFC 3161 requires) and an ``openssl ts`` config,
then serves POSTed timestamp queries with ``openssl ts -reply``::

    with LocalTSA() as tsa:
        token = request_token(tsa.url, digest)
        verify_token(token, digest, ca_cert=tsa.ca_cert)

``http_error`` makes it answer that HTTP status instead; ``digests`` limits the hashes it
accepts (a SHA-256 query is then refused with status rejection, failure badAlg).
"""

from __future__ import annotations

import shutil
import subprocess
import tempfile
import threading
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from pathlib import Path
from types import TracebackType

QUERY_TYPE = "application/timestamp-query"
REPLY_TYPE = "application/timestamp-reply"


def openssl(*args: str, cwd: Path) -> bytes:
    """Run openssl; its stdout, or an AssertionError with its complaint."""
    result = subprocess.run(
        ["openssl", *args], cwd=cwd, capture_output=True, timeout=60, check=False
    )
    if result.returncode != 0:
        raise AssertionError(f"openssl {' '.join(args)}: {result.stderr.decode(errors='replace')}")
    return result.stdout


TS_CONFIG = """\
[ tsa ]
default_tsa = tsa_config

[ tsa_config ]
dir = {dir}
serial = $dir/tsaserial
crypto_device = builtin
signer_cert = $dir/tsa.pem
certs = $dir/ca.pem
signer_key = $dir/tsa.key
signer_digest = sha256
default_policy = 1.3.6.1.4.1.99999.1.1
other_policies = 1.3.6.1.4.1.99999.1.2
digests = {digests}
accuracy = secs:1
clock_precision_digits = 0
ordering = no
tsa_name = yes
ess_cert_id_chain = no
ess_cert_id_alg = sha256
"""

TSA_EXTENSIONS = """\
[ tsa_ext ]
basicConstraints = critical, CA:FALSE
keyUsage = critical, digitalSignature, nonRepudiation
extendedKeyUsage = critical, timeStamping
subjectKeyIdentifier = hash
authorityKeyIdentifier = keyid:always
"""


class LocalTSA:
    """A timestamp authority serving on 127.0.0.1 (port 0) from a thread until closed.

    ``url``, ``ca_cert`` (the root CA PEM), ``tsa_cert`` (the TSA's own certificate PEM)
    and ``directory`` are set once started (on ``__enter__`` or :meth:`start`).
    """

    def __init__(self, name: str = "linkarchive test", digests: str = "sha256, sha384, sha512"):
        self.name = name
        self.digests = digests
        self.http_error: int | None = None
        self.requests = 0
        self._tmp: tempfile.TemporaryDirectory[str] | None = None
        self._server: ThreadingHTTPServer | None = None
        self._thread: threading.Thread | None = None
        self._lock = threading.Lock()  # openssl ts -reply updates the serial file

    # -- set-up ---------------------------------------------------------------------------

    def start(self) -> LocalTSA:
        if shutil.which("openssl") is None:
            raise RuntimeError("the openssl CLI is needed for the local TSA")
        self._tmp = tempfile.TemporaryDirectory(prefix="linkarchive-tsa-")
        self.directory = Path(self._tmp.name)
        self._make_certificates()
        self._serve()
        return self

    def _make_certificates(self) -> None:
        d = self.directory
        curve = ["-newkey", "ec", "-pkeyopt", "ec_paramgen_curve:P-256", "-nodes"]
        openssl(
            "req", "-x509", *curve, "-keyout", "ca.key", "-out", "ca.pem", "-days", "2",
            "-subj", f"/O={self.name}/CN={self.name} root CA",
            "-addext", "basicConstraints=critical,CA:TRUE",
            "-addext", "keyUsage=critical,keyCertSign,cRLSign",
            cwd=d,
        )  # fmt: skip
        openssl(
            "req", "-new", *curve, "-keyout", "tsa.key", "-out", "tsa.csr",
            "-subj", f"/O={self.name}/CN={self.name} TSA", cwd=d,
        )  # fmt: skip
        (d / "tsa_ext.cnf").write_text(TSA_EXTENSIONS)
        openssl(
            "x509", "-req", "-in", "tsa.csr", "-CA", "ca.pem", "-CAkey", "ca.key",
            "-set_serial", "2", "-days", "2", "-out", "tsa.pem",
            "-extfile", "tsa_ext.cnf", "-extensions", "tsa_ext", cwd=d,
        )  # fmt: skip
        (d / "tsaserial").write_text("01\n")
        (d / "tsa.cnf").write_text(TS_CONFIG.format(dir=d, digests=self.digests))
        self.ca_cert = d / "ca.pem"
        self.tsa_cert = d / "tsa.pem"

    def reply(self, query: bytes) -> bytes:
        """The DER TimeStampResp ``openssl ts -reply`` gives for ``query``."""
        with self._lock:
            self.requests += 1
            n = self.requests
            (self.directory / f"q{n}.tsq").write_bytes(query)
            openssl(
                "ts", "-reply", "-config", "tsa.cnf", "-queryfile", f"q{n}.tsq",
                "-out", f"r{n}.tsr", cwd=self.directory,
            )  # fmt: skip
            return (self.directory / f"r{n}.tsr").read_bytes()

    def _serve(self) -> None:
        tsa = self

        class Handler(BaseHTTPRequestHandler):
            def do_POST(self) -> None:  # noqa: N802 (http.server's name)
                length = int(self.headers.get("Content-Length") or 0)
                query = self.rfile.read(length)
                if tsa.http_error is not None:
                    self.send_error(tsa.http_error)
                    return
                if self.headers.get("Content-Type") != QUERY_TYPE:
                    self.send_error(415, f"expected {QUERY_TYPE}")
                    return
                try:
                    body = tsa.reply(query)
                except AssertionError:
                    self.send_error(500, "openssl ts -reply failed")
                    return
                self.send_response(200)
                self.send_header("Content-Type", REPLY_TYPE)
                self.send_header("Content-Length", str(len(body)))
                self.end_headers()
                self.wfile.write(body)

            def log_message(self, format: str, *args: object) -> None:
                pass

        self._server = ThreadingHTTPServer(("127.0.0.1", 0), Handler)
        self._server.daemon_threads = True
        host, port = self._server.server_address[:2]
        self.url = f"http://{host}:{port}/tsa"
        self._thread = threading.Thread(target=self._server.serve_forever, daemon=True)
        self._thread.start()

    # -- tear-down ------------------------------------------------------------------------

    def stop_serving(self) -> None:
        """Stop answering (the URL then refuses connections); the files stay."""
        if self._server is not None:
            self._server.shutdown()
            self._server.server_close()
            self._server = None
        if self._thread is not None:
            self._thread.join(timeout=10)
            self._thread = None

    def close(self) -> None:
        self.stop_serving()
        if self._tmp is not None:
            self._tmp.cleanup()
            self._tmp = None

    def __enter__(self) -> LocalTSA:
        return self.start()

    def __exit__(
        self,
        exc_type: type[BaseException] | None,
        exc: BaseException | None,
        tb: TracebackType | None,
    ) -> None:
        self.close()
