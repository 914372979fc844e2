"""Where webhooks may post: public addresses only, unless private networks are allowed.

Where it sits: under the HTTP sessions (:func:`http_session`) of the webhook senders
(:mod:`lts.notify.webhooks`) and the chat bot. Any user (a viewer too) may create a webhook, and
its delivery log shows what each try met; without a guard, LTS would post to, and report on,
whatever the engine's host can reach: its loopback, the local network, a cloud's metadata
address. So unless ``notify.webhooks.allow_private_networks`` is set, a URL whose host is such
an address is refused before any connection (:func:`lts.addresses.private_host`), and a host
name is connected only to the public addresses it resolves to (:class:`PublicResolver`;
resolving at connect time, so a name that changes to a private address later is refused then).
"""

import socket

import aiohttp
from aiohttp.abc import AbstractResolver, ResolveResult
from aiohttp.resolver import ThreadedResolver

from lts.addresses import is_private

__all__ = ["PublicResolver", "http_session"]


class PublicResolver(AbstractResolver):
    """The system's resolver (in a thread), keeping only public addresses."""

    def __init__(self) -> None:
        self._inner = ThreadedResolver()

    async def resolve(self, host: str, port: int = 0,
                      family: socket.AddressFamily = socket.AF_INET) -> list[ResolveResult]:
        found = await self._inner.resolve(host, port, family)
        public = [r for r in found if not is_private(r["host"])]
        if not public:
            raise OSError(0, "resolves only to private addresses (not allowed)")
        return public

    async def close(self) -> None:
        await self._inner.close()


def http_session(connections: int, *, public_only: bool = False) -> aiohttp.ClientSession:
    """An HTTP client session: no proxies or credentials from the environment; with
    ``public_only``, host names connect only to their public addresses."""
    connector = aiohttp.TCPConnector(limit=connections,
                                     resolver=PublicResolver() if public_only else None)
    return aiohttp.ClientSession(trust_env=False, connector=connector)
