"""Whether a host name or address is this machine's loopback. Pure.

Used where only loopback may do something less safe: plain ``http://`` webhook and token URLs
(the sandbox portal) and ``callq serve --no-auth``. The decision is :mod:`ipaddress`'s, on the
address the name stands for as the resolver reads it: ``127.1`` and ``0x7f.0.0.1`` are
``127.0.0.1`` to ``inet_aton`` (and so to aiohttp and curl), so they count as loopback too, and
``::ffff:127.0.0.1`` is IPv4 loopback written as IPv6. ``localhost`` and ``*.localhost`` are
loopback by RFC 6761; no other name is resolved (a name's address can change after the check).
"""

from __future__ import annotations

import ipaddress
import re
import socket

# inet_aton's forms: 1 to 4 parts, each decimal, octal (0…) or hex (0x…). Checked first because
# glibc's inet_aton also accepts trailing garbage after a space.
_LEGACY_IPV4 = re.compile(r"(?:0x[0-9a-f]+|[0-9]+)(?:\.(?:0x[0-9a-f]+|[0-9]+)){0,3}", re.IGNORECASE)


def is_loopback_host(host: str) -> bool:
    """True if ``host`` (a name, an IPv4 or IPv6 address, with or without ``[]``) is loopback.

    Args:
        host: for example ``127.0.0.1``, ``127.1``, ``[::1]``, ``localhost``.

    Returns:
        Whether connections to it stay on this machine: 127.0.0.0/8, ::1 (also IPv4-mapped),
        ``localhost`` and names under ``.localhost``.
    """
    name = host.strip().lower()
    if name.startswith("[") and name.endswith("]"):
        name = name[1:-1]
    name = name.removesuffix(".")  # a fully qualified "localhost."
    if name == "localhost" or name.endswith(".localhost"):
        return True
    address: ipaddress.IPv4Address | ipaddress.IPv6Address | None
    try:
        address = ipaddress.ip_address(name)
    except ValueError:
        address = _legacy_ipv4(name)
    if isinstance(address, ipaddress.IPv6Address) and address.ipv4_mapped is not None:
        address = address.ipv4_mapped
    return address is not None and address.is_loopback


def _legacy_ipv4(name: str) -> ipaddress.IPv4Address | None:
    if not _LEGACY_IPV4.fullmatch(name):
        return None
    try:
        return ipaddress.IPv4Address(socket.inet_aton(name))
    except OSError:
        return None
