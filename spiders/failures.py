"""One readable line for a download that failed: what the link's ``error`` says.

Scrapy and Twisted report failures as exception reprs nested in lists (``DownloadFailedError:
[<twisted.python.failure.Failure twisted.web._newclient.ParseError: ...>]``) or with no
message at all. An archivist reads the link's error to decide what to do next, so each
kind of failure a hostile or broken server can cause gets its own plain sentence, naming
the setting that governs it where there is one.
"""

from __future__ import annotations

from typing import Any

from OpenSSL import SSL
from scrapy import Request
from scrapy.exceptions import (
    CannotResolveHostError,
    DownloadConnectionRefusedError,
    DownloadFailedError,
    DownloadTimeoutError,
    IgnoreRequest,
    ResponseDataLossError,
)
from scrapy.utils.httpobj import urlparse_cached
from twisted.internet import error as tx_error
from twisted.web._newclient import ParseError, ResponseFailed, ResponseNeverReceived

from pipeline.netpolicy import AddressRefused, untrusted_reason


def describe(exc: BaseException, request: Request | None = None) -> str:
    """What went wrong with ``request``'s download, in one line."""
    if isinstance(exc, AddressRefused):
        return str(exc)
    if isinstance(exc, DownloadTimeoutError | tx_error.TimeoutError):
        seconds = request.meta.get("download_timeout") if request is not None else None
        within = f" within {seconds:g} s" if isinstance(seconds, int | float) else ""
        return f"timed out: no complete response{within} (LINKARCHIVE_DOWNLOAD_TIMEOUT)"
    if isinstance(exc, DownloadConnectionRefusedError | tx_error.ConnectionRefusedError):
        return f"connection refused by {_netloc(request)}"
    if isinstance(exc, CannotResolveHostError | tx_error.DNSLookupError):
        host = urlparse_cached(request).hostname if request is not None else ""
        return f"host name not found (DNS): {host}"
    if isinstance(exc, ResponseDataLossError):
        return "the connection ended before the whole body arrived"
    if isinstance(exc, IgnoreRequest):
        return _ignored(exc, request)
    reasons = _reasons(exc)
    if reasons:
        return _why_failed(reasons[0])
    return f"{type(exc).__name__}: {exc}".strip()


def _netloc(request: Request | None) -> str:
    if request is None:
        return "the server"
    parts = urlparse_cached(request)
    return f"{parts.hostname}:{parts.port or (443 if parts.scheme == 'https' else 80)}"


def _ignored(exc: IgnoreRequest, request: Request | None) -> str:
    message = str(exc)
    if "max redirections" in message and request is not None:
        chain = [*request.meta.get("redirect_urls", []), request.url]
        if len(set(chain)) < len(chain):
            return f"a redirect loop: {chain[-1]} redirects back to itself"
        return f"more than {len(chain) - 1} redirects (REDIRECT_MAX_TIMES), last {chain[-1]}"
    return message


def _reasons(exc: BaseException) -> list[Any]:
    """The Twisted failures a wrapped ``ResponseFailed`` carries (its reasons)."""
    for candidate in (exc, exc.__cause__):
        if isinstance(candidate, ResponseFailed | ResponseNeverReceived):
            return [reason.value for reason in candidate.reasons]
    if isinstance(exc, DownloadFailedError) and exc.__cause__ is not None:
        return [exc.__cause__]
    return []


def _why_failed(reason: Any) -> str:
    if isinstance(reason, ParseError):
        what, data = (list(reason.args) + ["", b""])[:2]
        shown = data[:80].decode("latin-1") if isinstance(data, bytes) else str(data)[:80]
        return f"malformed response: {what} in {shown!r}"
    if isinstance(reason, SSL.Error):
        return untrusted_reason(reason) or f"TLS handshake failed: {reason}"
    if isinstance(reason, tx_error.ConnectionDone | tx_error.ConnectionLost):
        return (
            "the server closed the connection before a complete response head "
            "(none, or a malformed or over-long header)"
        )
    return f"{type(reason).__name__}: {reason}".strip()
