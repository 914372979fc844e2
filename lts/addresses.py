"""Which hosts are private: the rule both the webhooks API (refusing a URL when it is made) and
the webhook senders (refusing it again at each connection, after resolving) apply.

Where it sits: beside the layers (a pure function of a host's text, no lookup), imported by
:mod:`lts.api.routes.webhooks` and :mod:`lts.notify.destinations`.
"""

import ipaddress
import socket

__all__ = ["LOCAL_NAMES", "is_private", "private_host"]

#: Names that never lead to a public host: RFC 6761's ``localhost``, mDNS's ``.local``, the
#: ``.internal`` of cloud networks and RFC 9476.
LOCAL_NAMES = (".localhost", ".local", ".internal")


def is_private(address: str) -> bool:
    """Loopback, private, link-local, shared, reserved, multicast or unspecified (IPv4-mapped
    IPv6 addresses judged as their IPv4 address). ``ValueError`` if it is no address."""
    ip = ipaddress.ip_address(address.split("%", 1)[0])
    if isinstance(ip, ipaddress.IPv6Address) and ip.ipv4_mapped is not None:
        ip = ip.ipv4_mapped
    return not ip.is_global or ip.is_multicast


def private_host(host: str) -> bool:
    """``host`` (a URL's host, brackets stripped or not) is a local name or an address literal
    that is private; IPv4's short forms (``127.1``, ``2130706433``, ``0177.0.0.1``) are
    addresses too, as resolvers read them. Any other name: False (its addresses are checked
    when it is resolved)."""
    host = host.strip("[]").rstrip(".").lower()
    if host == "localhost" or host.endswith(LOCAL_NAMES):
        return True
    try:
        return is_private(host)
    except ValueError:
        pass
    try:
        return is_private(socket.inet_ntoa(socket.inet_aton(host)))  # parses text, no lookup
    except (OSError, ValueError):
        return False
