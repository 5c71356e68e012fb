"""`callq enqueue --file`: the summary, the exit code, a dry run, and a file it cannot import."""

from __future__ import annotations

import argparse
import io
import json
from pathlib import Path

import pytest
from redis.asyncio import Redis

from ops.cli.jobs import add_enqueue_arguments, enqueue
from schemas.store.keys import Keys
from tests.support.helpers import make_settings, sandbox_portal

CSV = "from_line,to_number,text_to_pronounce\nreg1332,+79111234567,Hi\nreg1332,12,Hi\n"


def parse(*argv: str) -> argparse.Namespace:
    """The enqueue options as the CLI parses them."""
    parser = argparse.ArgumentParser()
    add_enqueue_arguments(parser)
    return parser.parse_args(list(argv))


async def test_file_summary_and_exit_code(redis: Redis, redis_url: str, prefix: str, tmp_path: Path) -> None:
    """A file with one bad row queues the good one, lists the bad one (number masked) and exits 1;
    a dry run first queues nothing."""
    settings = make_settings(
        redis_url, prefix, {"default": sandbox_portal("https://acme.bitrix24.ru/rest/1/x/")}
    )
    path = tmp_path / "campaign.csv"
    path.write_text(CSV)
    out = io.StringIO()
    assert (
        await enqueue(parse("--file", str(path), "--dry-run"), settings=settings, redis=redis, out=out) == 1
    )
    assert await redis.zcard(Keys(prefix).queue) == 0
    assert "would be queued" in out.getvalue()
    out = io.StringIO()
    assert await enqueue(parse("--file", str(path)), settings=settings, redis=redis, out=out) == 1
    text = out.getvalue()
    assert "1 queued" in " ".join(text.split()) and "line 3" in text and "rejected" in text
    assert "+79111234567" not in text
    assert await redis.zcard(Keys(prefix).queue) == 1
    buffer = io.StringIO()
    assert (
        await enqueue(parse("--file", str(path), "--json"), settings=settings, redis=redis, out=buffer) == 1
    )
    data = json.loads(buffer.getvalue())
    assert (data["queued"], data["already_queued"], data["rejected"]) == (0, 1, 1)


async def test_unknown_column_exits_2(
    redis: Redis, redis_url: str, prefix: str, tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    """A column that is no field of a job fails the file before anything is queued."""
    settings = make_settings(
        redis_url, prefix, {"default": sandbox_portal("https://acme.bitrix24.ru/rest/1/x/")}
    )
    path = tmp_path / "c.csv"
    path.write_text("from_line,phone\nL,1\n")
    assert await enqueue(parse("--file", str(path)), settings=settings, redis=redis) == 2
    assert "unknown column(s) 'phone'" in capsys.readouterr().err


async def test_line_and_to_required_without_file(
    redis: Redis, redis_url: str, prefix: str, capsys: pytest.CaptureFixture[str]
) -> None:
    """Without --file, --line and --to are required."""
    settings = make_settings(
        redis_url, prefix, {"default": sandbox_portal("https://acme.bitrix24.ru/rest/1/x/")}
    )
    assert await enqueue(parse("--line", "L"), settings=settings, redis=redis) == 2
    assert "--line and --to are required" in capsys.readouterr().err


async def test_a_cell_over_the_csv_limit_exits_2_in_one_line(
    redis: Redis, redis_url: str, prefix: str, tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    """A cell larger than the csv module's field limit is a file that cannot be imported: exit 2 and one
    line that says so, no traceback."""
    settings = make_settings(
        redis_url, prefix, {"default": sandbox_portal("https://acme.bitrix24.ru/rest/1/x/")}
    )
    path = tmp_path / "big.csv"
    path.write_text("from_line,to_number,text_to_pronounce\nL,+79111234567," + "a" * 200_000 + "\n")
    assert await enqueue(parse("--file", str(path)), settings=settings, redis=redis) == 2
    err = capsys.readouterr().err
    assert err.count("\n") == 1 and "cannot be read as CSV" in err and "field larger than field limit" in err
