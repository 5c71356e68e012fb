"""Which hosts are loopback: the resolver's reading of the address, decided by ipaddress. Pure."""

from __future__ import annotations

import pytest

from schemas.config.loopback import is_loopback_host


@pytest.mark.parametrize(
    "host",
    [
        "127.0.0.1",
        "127.1",
        "127.0.1",
        "127.0.0.2",
        "127.255.255.254",
        "0x7f.0.0.1",
        "0177.0.0.1",
        "2130706433",
        "::1",
        "[::1]",
        "0:0:0:0:0:0:0:1",
        "::ffff:127.0.0.1",
        "[::ffff:7f00:1]",
        "localhost",
        "LOCALHOST",
        "localhost.",
        "sandbox.localhost",
        " 127.0.0.1 ",
    ],
)
def test_loopback(host: str) -> None:
    """Every spelling of 127.0.0.0/8 and ::1 that a client would connect to, and localhost names."""
    assert is_loopback_host(host)


@pytest.mark.parametrize(
    "host",
    [
        "0.0.0.0",
        "::",
        "[::]",
        "",
        "10.0.0.1",
        "128.0.0.1",
        "1.127.0.0",
        "acme.bitrix24.ru",
        "localhost.acme.ru",
        "mylocalhost",
        "127.0.0.1.evil.example",
        "127.0.0.1 evil",
        "0x7g.0.0.1",
        "1.2.3.4.5",
        "::ffff:10.0.0.1",
        "fe80::1",
        "127.0.0.1:80",
    ],
)
def test_not_loopback(host: str) -> None:
    """Wildcards, other addresses and names that only look local are not loopback."""
    assert not is_loopback_host(host)
