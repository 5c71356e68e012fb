"""`callq enqueue` names the option whose value it cannot read, and stores nothing for it; `status`,
`list` and `resume` show what they show right."""

from __future__ import annotations

import argparse
import io
from datetime import UTC, datetime
from zoneinfo import ZoneInfo

import pytest
from redis.asyncio import Redis

from ops.cli import resume
from ops.cli.jobs import _when, add_enqueue_arguments, enqueue, status
from producers.api import Producer
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


@pytest.mark.parametrize(
    ("zone", "shown"),
    [
        ("UTC", "2026-11-22 10:00:00 UTC"),
        ("Etc/UTC", "2026-11-22 10:00:00 UTC"),
        ("Europe/Moscow", "2026-11-22 10:00:00 UTC (2026-11-22 13:00:00 MSK Europe/Moscow)"),
        ("Etc/GMT-3", "2026-11-22 10:00:00 UTC (2026-11-22 13:00:00 +03 Etc/GMT-3)"),
        ("Europe/London", "2026-11-22 10:00:00 UTC (2026-11-22 10:00:00 GMT Europe/London)"),
    ],
)
def test_a_scheduled_time_names_utc_once(zone: str, shown: str) -> None:
    """Run times show UTC once, then the portal's local time unless the portal is in UTC itself."""
    assert _when(datetime(2026, 11, 22, 10, tzinfo=UTC), ZoneInfo(zone)) == shown
    assert _when(datetime(2026, 11, 22, 10, tzinfo=UTC), UTC) == "2026-11-22 10:00:00 UTC"


async def test_status_of_a_rejected_job_shows_no_none(
    redis: Redis, redis_url: str, prefix: str, capsys: pytest.CaptureFixture[str]
) -> None:
    """A job rejected for a missing number and line shows `-` for them, never `None`."""
    settings = make_settings(
        redis_url, prefix, {"default": sandbox_portal("https://acme.bitrix24.ru/rest/1/x/")}
    )
    submitted = await Producer(redis, settings=settings).submit({"text_to_pronounce": "Hi"})
    assert submitted.status == "rejected"
    out = io.StringIO()
    args = argparse.Namespace(id=submitted.job_id, portal=None, json=False)
    code = await status(args, settings=settings, redis=redis, out=out)
    shown = [line for line in out.getvalue().splitlines() if line.startswith("  portal")]
    assert code == 0 and shown == ["  portal -  line -  to -  attempts 0"], shown


async def test_resume_of_an_unknown_portal_exits_2(
    redis: Redis, redis_url: str, prefix: str, capsys: pytest.CaptureFixture[str]
) -> None:
    """`callq resume` of a portal that is not configured says so in one line and exits 2."""
    settings = make_settings(
        redis_url, prefix, {"default": sandbox_portal("https://acme.bitrix24.ru/rest/1/x/")}
    )
    code = await resume.run(argparse.Namespace(portal="nowhere"), settings, redis)
    captured = capsys.readouterr()
    assert code == 2 and captured.out == ""
    assert captured.err == 'callq resume: unknown portal "nowhere" (configured: default)\n'
