"""`callq enqueue` names the option whose value it cannot read, and stores nothing for it."""

from __future__ import annotations

import argparse

import pytest
from redis.asyncio import Redis

from ops.cli.jobs import add_enqueue_arguments, enqueue
from schemas.store.keys import Keys
from tests.support.helpers import make_settings, sandbox_portal

BASE = ["--line", "reg1332", "--to", "+79111234567", "--text", "Hi"]


def parse(*extra: str) -> argparse.Namespace:
    """The enqueue options as the CLI parses them."""
    parser = argparse.ArgumentParser()
    add_enqueue_arguments(parser)
    return parser.parse_args([*BASE, *extra])


@pytest.mark.parametrize(
    ("extra", "expected"),
    [
        (["--at", "25:00"], "callq enqueue: --at: '25:00' is not a time of day"),
        (["--at", "10:75"], "callq enqueue: --at: '10:75' is not a time of day"),
        (["--at", "next friday"], "callq enqueue: --at: 'next friday' is not a time"),
        (["--in", "soon"], "callq enqueue: --in: 'soon' is not a duration"),
        (["--deadline", "25:00"], "callq enqueue: --deadline: '25:00' is not a time of day"),
        (["--deadline", "2026-13-01 10:00"], "callq enqueue: --deadline: '2026-13-01 10:00' is not a time"),
        (["--meta", "{lead: 1}"], "callq enqueue: --meta: not JSON"),
        (["--at", "10:00", "--meta", "nope"], "callq enqueue: --meta: not JSON"),
        (["--portal", "nowhere"], "callq enqueue: "),
    ],
)
async def test_a_bad_option_is_named_and_nothing_is_stored(
    extra: list[str],
    expected: str,
    redis: Redis,
    redis_url: str,
    prefix: str,
    capsys: pytest.CaptureFixture[str],
) -> None:
    """Each unreadable option is named in one stderr line, the exit code is 2, and no job is stored."""
    settings = make_settings(
        redis_url, prefix, {"default": sandbox_portal("https://acme.bitrix24.ru/rest/1/x/")}
    )

    code = await enqueue(parse(*extra), settings=settings, redis=redis)

    err = capsys.readouterr().err
    assert code == 2
    assert err.startswith(expected), err
    assert err.count("\n") == 1
    if "--meta" not in expected:
        assert "--meta" not in err
    assert await redis.zcard(Keys(prefix).queue) == 0
    assert await redis.xlen(Keys(prefix).outcomes) == 0
