"""The crawler's side of the address policy (``pipeline.netpolicy``): no request reaches a
loopback, private, link-local or other non-public address unless the operator allows it.

Two places, because Twisted resolves host names but connects to literal addresses
directly:

* :class:`GuardedResolver` (``TWISTED_DNS_RESOLVER``) checks the address every host name
  resolves to, and hands Twisted only that checked address to connect to (no second
  lookup a rebinding DNS server could answer differently);
* :class:`AddressPolicyMiddleware` refuses, before any connection, URLs whose host is a
  refused literal address or resolves to one, for the first request and for every
  redirect (each is a new request through the middlewares), with the policy's reason.
"""

from __future__ import annotations

import ipaddress
from collections.abc import Sequence
from typing import Any

from scrapy import Request
from scrapy.crawler import Crawler
from scrapy.resolver import CachingThreadedResolver
from scrapy.utils.defer import maybe_deferred_to_future
from scrapy.utils.httpobj import urlparse_cached
from twisted.internet.defer import Deferred
from twisted.internet.interfaces import IResolverSimple
from twisted.web.iweb import IPolicyForHTTPS
from zope.interface import implementer

from pipeline.netpolicy import AddressPolicy, AddressRefused, TlsPolicy, address_policy


def _policy(settings: Any) -> AddressPolicy:
    return address_policy(settings.get("LINKARCHIVE_ALLOW_ADDRESSES") or "")


@implementer(IResolverSimple)
class GuardedResolver(CachingThreadedResolver):
    """Scrapy's caching resolver, refusing answers the address policy refuses."""

    policy: AddressPolicy

    @classmethod
    def from_crawler(cls, crawler: Crawler, reactor: Any) -> GuardedResolver:  # type: ignore[override]
        resolver = super().from_crawler(crawler, reactor)
        resolver.policy = _policy(crawler.settings)
        return resolver

    def getHostByName(self, name: str, timeout: Sequence[int] = ()) -> Deferred[str]:  # noqa: N802
        found = super().getHostByName(name, timeout)

        def check(ip: str) -> str:
            self.policy.check_ip(name, ip)  # raises AddressRefused: the connection fails
            return ip

        return found.addCallback(check)


class AddressPolicyMiddleware:
    """Refuse requests whose host the address policy refuses, with its reason.

    A literal address is checked here. A name is resolved here, through the reactor's
    resolver (:class:`GuardedResolver`, which checks the answer and caches it for the
    connection that follows): a refusal then fails the request with the policy's own
    words instead of a DNS error that would make the link look ``dead``.
    """

    def __init__(self, policy: AddressPolicy) -> None:
        self.policy = policy

    @classmethod
    def from_crawler(cls, crawler: Crawler) -> AddressPolicyMiddleware:
        return cls(_policy(crawler.settings))

    async def process_request(self, request: Request) -> None:
        host = urlparse_cached(request).hostname or ""
        try:
            ipaddress.ip_address(host)
        except ValueError:
            if not self.policy.allows_host(host):
                from twisted.internet import reactor

                await maybe_deferred_to_future(reactor.resolve(host))  # type: ignore[attr-defined]
            return
        self.policy.check_ip(host, host)


@implementer(IPolicyForHTTPS)
class TlsPolicyContextFactory:
    """Scrapy's TLS context factory: with DOWNLOAD_VERIFY_CERTIFICATES (settings.py turns
    it on) each site's certificate is verified, unless the TLS policy
    (``LINKARCHIVE_UNTRUSTED_TLS``) lists the site. A refused certificate fails the
    download; the spider's error says why."""

    def __init__(self, factory: Any, policy: TlsPolicy) -> None:
        self.factory, self.policy = factory, policy

    def creatorForNetloc(self, hostname: bytes, port: int) -> Any:  # noqa: N802 (Twisted's)
        # Scrapy's factory reads this flag per call; Twisted calls from one thread.
        saved = self.factory._verify_certificates
        verify = saved and self.policy.verifies(hostname.decode("ascii"), port)
        self.factory._verify_certificates = verify
        try:
            return self.factory.creatorForNetloc(hostname, port)
        finally:
            self.factory._verify_certificates = saved


__all__ = [
    "AddressPolicyMiddleware",
    "AddressRefused",
    "GuardedResolver",
    "TlsPolicyContextFactory",
]
