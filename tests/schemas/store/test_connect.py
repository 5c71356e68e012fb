"""Redis URLs (:mod:`schemas.store.connect`): what a Sentinel URL names. Pure."""

from __future__ import annotations

import pytest

from schemas.store.connect import parse_sentinel_url


@pytest.mark.parametrize(
    ("url", "sentinels", "master", "db", "password"),
    [
        ("redis+sentinel://127.0.0.1:26379/callq", ((("127.0.0.1", 26379),)), "callq", 0, None),
        ("redis+sentinel://:pw@a:1,b:2,c/m/3", (("a", 1), ("b", 2), ("c", 26379)), "m", 3, "pw"),
    ],
)
def test_parse_sentinel_url(
    url: str, sentinels: tuple[tuple[str, int], ...], master: str, db: int, password: str | None
) -> None:
    """Sentinel URLs name the sentinels, the master, the database and the master's password."""
    target = parse_sentinel_url(url)
    assert target is not None
    assert (target.sentinels, target.master, target.db, target.password) == (sentinels, master, db, password)
    assert parse_sentinel_url("redis://localhost:6379/0") is None
