"""Which network addresses linkarchive may fetch from: public ones, and what the operator
allows (``LINKARCHIVE_ALLOW_ADDRESSES``).

Crawled pages choose URLs. A page, a redirect or a DNS answer could point the crawler at
this machine's own services, the local network or a cloud's metadata service, and the
archive would then show their answers to every researcher (server-side request forgery).
So every fetch — crawl requests and their requisites, checks, the browser's requests,
video downloads (through the browser's recording proxy) and seed imports — checks the
addresses it will connect to, *after* DNS resolution and again on every redirect, and
connects only to the addresses it checked.

Refused: loopback, private, link-local (cloud metadata at 169.254.169.254), CGNAT,
multicast, reserved and unspecified addresses, in IPv4 and IPv6 (IPv4-mapped included).
The operator's allowance is one setting: comma-separated addresses, CIDR ranges or host
names, e.g. ``127.0.0.0/8`` (the replica world, the demo and the tests set it).
"""

from __future__ import annotations

import http.client
import ipaddress
import os
import socket
import urllib.request
from dataclasses import dataclass
from functools import cache
from typing import Any

ALLOW_SETTING = "LINKARCHIVE_ALLOW_ADDRESSES"

IPAddress = ipaddress.IPv4Address | ipaddress.IPv6Address
IPNetwork = ipaddress.IPv4Network | ipaddress.IPv6Network


class AddressRefused(Exception):
    """A fetch the address policy refuses; the message says which address and why."""


class PolicyError(ValueError):
    """``LINKARCHIVE_ALLOW_ADDRESSES`` holds an entry that is no address, range or name."""


def _kind(ip: IPAddress) -> str | None:
    """Why ``ip`` is not a public address (None when it is)."""
    if isinstance(ip, ipaddress.IPv6Address) and ip.ipv4_mapped is not None:
        return _kind(ip.ipv4_mapped)
    for kind, flag in (
        ("a loopback", ip.is_loopback),
        ("an unspecified", ip.is_unspecified),
        ("a link-local", ip.is_link_local),
        ("a multicast", ip.is_multicast),
        ("a private", ip.is_private),
        ("a reserved", ip.is_reserved),
    ):
        if flag:
            return kind
    return None if ip.is_global else "a non-public"


@dataclass(frozen=True)
class AddressPolicy:
    """Public addresses, plus the operator's ``networks`` and ``hosts``."""

    networks: tuple[IPNetwork, ...] = ()
    hosts: frozenset[str] = frozenset()

    @classmethod
    def parse(cls, value: str) -> AddressPolicy:
        """From the setting's text; :class:`PolicyError` names an entry that is none of the
        three."""
        networks: list[IPNetwork] = []
        hosts: set[str] = set()
        for entry in (part.strip() for part in value.split(",")):
            if not entry:
                continue
            try:
                networks.append(ipaddress.ip_network(entry.strip("[]"), strict=False))
                continue
            except ValueError:
                pass
            name = entry.lower().rstrip(".")
            if "/" in name or not all(c.isalnum() or c in "-._" for c in name):
                raise PolicyError(
                    f"{ALLOW_SETTING}: {entry!r} is not an address, a CIDR range or a host name"
                )
            hosts.add(name)
        return cls(tuple(networks), frozenset(hosts))

    def allows_host(self, host: str) -> bool:
        """Whether the operator allowed this host name outright (whatever it resolves to)."""
        return host.lower().rstrip(".") in self.hosts

    def check_ip(self, host: str, ip: str) -> None:
        """Raise :class:`AddressRefused` unless ``host`` may be reached at address ``ip``."""
        address = ipaddress.ip_address(ip.split("%", 1)[0])
        if isinstance(address, ipaddress.IPv6Address) and address.ipv4_mapped is not None:
            address = address.ipv4_mapped
        kind = _kind(address)
        if kind is None or self.allows_host(host):
            return
        if any(address in network for network in self.networks):
            return
        shown = host if host == ip else f"{host} ({ip})"
        raise AddressRefused(
            f"refused {shown}: {kind} address, not fetched (allow it with {ALLOW_SETTING})"
        )

    def resolve(self, host: str, port: int) -> list[str]:
        """The addresses to connect to for ``host``: every one checked (one refused address
        refuses the host: an answer mixing public and private addresses is an attack)."""
        host = host.strip("[]")
        try:
            ipaddress.ip_address(host.split("%", 1)[0])
        except ValueError:
            pass
        else:
            self.check_ip(host, host)
            return [host]
        try:
            found = socket.getaddrinfo(host, port, type=socket.SOCK_STREAM)
        except (socket.gaierror, UnicodeError) as exc:
            raise OSError(f"cannot resolve {host}: {exc}") from exc
        addresses = list(dict.fromkeys(str(info[4][0]) for info in found))
        for ip in addresses:
            self.check_ip(host, ip)
        return addresses


@cache
def _parsed(value: str) -> AddressPolicy:
    return AddressPolicy.parse(value)


def address_policy(value: str | None = None) -> AddressPolicy:
    """The policy of ``value``, else of ``LINKARCHIVE_ALLOW_ADDRESSES``."""
    return _parsed(os.environ.get(ALLOW_SETTING, "") if value is None else value)


def urlopen(
    request: urllib.request.Request, timeout: float, policy: AddressPolicy | None = None
) -> Any:
    """``urllib.request.urlopen`` whose every connection, redirects included, goes only to
    an address ``policy`` (default: the setting's) checked after resolving it. Proxies
    from the environment are not used: the address checked is the one connected to."""
    chosen = policy or address_policy()

    class Plain(http.client.HTTPConnection):
        def connect(self) -> None:
            address = chosen.resolve(self.host, self.port)[0]
            self.sock = socket.create_connection((address, self.port), self.timeout)

    class Secure(http.client.HTTPSConnection):
        def connect(self) -> None:
            address = chosen.resolve(self.host, self.port)[0]
            sock = socket.create_connection((address, self.port), self.timeout)
            self.sock = self._context.wrap_socket(sock, server_hostname=self.host)  # type: ignore[attr-defined]

    class PlainHandler(urllib.request.HTTPHandler):
        def http_open(self, req: urllib.request.Request) -> Any:
            return self.do_open(Plain, req)

    class SecureHandler(urllib.request.HTTPSHandler):
        def https_open(self, req: urllib.request.Request) -> Any:
            return self.do_open(Secure, req)

    opener = urllib.request.build_opener(
        urllib.request.ProxyHandler({}), PlainHandler(), SecureHandler()
    )
    return opener.open(request, timeout=timeout)


# ----------------------------------------------------------------------------- TLS

UNTRUSTED_TLS_SETTING = "LINKARCHIVE_UNTRUSTED_TLS"


@dataclass(frozen=True)
class TlsPolicy:
    """Which HTTPS sites are archived although their certificate does not verify.

    Every HTTPS fetch verifies the site's certificate against the system's trust store:
    a verified chain is part of the provenance of what was archived (the bytes came from
    the named host). A site with a self-signed, expired or mismatched certificate is
    refused and the link's error says why, unless the operator lists it in
    ``LINKARCHIVE_UNTRUSTED_TLS``: comma-separated host names or ``host:port``, or ``*``
    for every site.
    """

    hosts: frozenset[str] = frozenset()

    @classmethod
    def parse(cls, value: str) -> TlsPolicy:
        return cls(frozenset(p.strip().lower().rstrip(".") for p in value.split(",") if p.strip()))

    def verifies(self, host: str, port: int) -> bool:
        """False if the certificate of ``host:port`` is not to be checked."""
        host = host.lower().rstrip(".").strip("[]")
        return not ({"*", host, f"{host}:{port}"} & self.hosts)


def tls_policy(value: str | None = None) -> TlsPolicy:
    """The policy of ``value``, else of ``LINKARCHIVE_UNTRUSTED_TLS``."""
    return TlsPolicy.parse(os.environ.get(UNTRUSTED_TLS_SETTING, "") if value is None else value)


def untrusted_reason(error: BaseException | str) -> str | None:
    """A one-line reason if ``error`` is a refused certificate, else None."""
    text = str(error)
    lowered = text.lower()
    if "certificate verify failed" not in lowered and "certificate_verify_failed" not in lowered:
        return None
    markers = ("self-signed certificate", "self signed certificate", "certificate has expired",
               "hostname mismatch", "unable to get local issuer certificate")  # fmt: skip
    detail = next((marker for marker in markers if marker in lowered), "")
    return (
        f"TLS certificate not trusted{': ' + detail if detail else ''}"
        f" (to archive it anyway, add the host to {UNTRUSTED_TLS_SETTING})"
    )
