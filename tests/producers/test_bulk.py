"""Bulk import (:mod:`producers.bulk`): reading CSV and JSONL, the preview, and an import that is idempotent."""

from __future__ import annotations

import asyncio
import json

import pytest
from redis.asyncio import Redis

from producers.api import Producer
from producers.bulk import (
    YIELD_EVERY,
    FileProblem,
    FileTooLarge,
    RowVerdict,
    import_rows,
    preview,
    read_rows,
    row_key,
)
from schemas.store.keys import Keys
from tests.support.helpers import make_settings, read_outcomes, sandbox_portal

CSV = (
    "from_line,to_number,text_to_pronounce,metadata\n"
    'reg1332,+79111234567,Hello,"{""lead"": 1}"\n'
    "reg1332,not a number,Hello,\n"
    "reg1332,+79111234568,Hello,\n"
)


@pytest.mark.parametrize(
    ("data", "filename", "expected"),
    [
        (
            b"from_line,to_number\nL,+79111234567\n",
            "a.csv",
            [{"from_line": "L", "to_number": "+79111234567"}],
        ),
        (b"\xef\xbb\xbffrom_line\nL\n\n", "", [{"from_line": "L"}]),  # BOM, blank line
        (b'{"from_line": "L"}\n\n{"to_number": "1"}\n', "x.jsonl", [{"from_line": "L"}, {"to_number": "1"}]),
        (b'{"from_line": "L"}\n', "", [{"from_line": "L"}]),  # sniffed as JSONL
        (b"from_line,metadata\nL,\n", "a.csv", [{"from_line": "L"}]),  # an empty cell is absent
    ],
)
def test_read_rows(data: bytes, filename: str, expected: list[dict[str, str]]) -> None:
    """Rows are read from CSV (header = the job's fields) or JSONL, empty cells and lines skipped."""
    assert [row.fields for row in read_rows(data, filename=filename)] == expected


@pytest.mark.parametrize(
    ("data", "line", "problem"),
    [
        (b'{"a": 1}\nnot json\n', 2, "not JSON"),
        (b'{"a": 1}\n[1]\n', 2, "not a JSON object"),
        (b"from_line,to_number\nL\n", 2, "has 1 cells"),
        (b"from_line,metadata\nL,{oops\n", 2, "metadata: not a JSON object"),
    ],
)
def test_unreadable_rows_say_why(data: bytes, line: int, problem: str) -> None:
    """A row that cannot be read is kept, with its line and the reason."""
    bad = [row for row in read_rows(data) if row.fields is None]
    assert len(bad) == 1 and bad[0].line == line and problem in (bad[0].problem or "")


@pytest.mark.parametrize(
    ("data", "message"),
    [
        (b"from_line,to_numbr\n", "unknown column(s) 'to_numbr'"),
        (b"from_line,from_line\n", "named twice"),
        (b"\xff\xfe", "not UTF-8"),
    ],
)
def test_a_file_that_cannot_be_imported(data: bytes, message: str) -> None:
    """An unknown column (a typo must not drop a field), a repeated column or bytes that are not UTF-8
    fail the whole file."""
    with pytest.raises(FileProblem, match=message.replace("(", r"\(").replace(")", r"\)")):
        read_rows(data, filename="f.csv")


def test_row_key_is_the_content() -> None:
    """The derived key depends on the fields only, not on their order, and differs for any change."""
    a = row_key({"from_line": "L", "to_number": "1"})
    assert a == row_key({"to_number": "1", "from_line": "L"})
    assert a != row_key({"from_line": "L", "to_number": "2"})
    assert a.startswith("import-") and len(a) <= 200


async def test_preview_stores_nothing_and_import_is_idempotent(
    redis: Redis, redis_url: str, prefix: str
) -> None:
    """The preview names the bad row and stores nothing; the import queues the good rows; importing the
    same file again queues nothing new."""
    settings = make_settings(
        redis_url, prefix, {"default": sandbox_portal("https://acme.bitrix24.ru/rest/1/x/")}
    )
    producer = Producer(redis, settings=settings)
    rows = read_rows(CSV.encode(), filename="c.csv")
    summary, checked = await preview(producer, rows)
    assert (summary.counts[RowVerdict.QUEUED], summary.counts[RowVerdict.REJECTED]) == (2, 1)
    (bad,) = summary.rejected
    assert bad.line == 3 and "to_number" in (bad.reason or "")
    assert len(checked) == 2
    assert await redis.keys(f"{prefix}:*") == []

    first = await import_rows(producer, rows)
    assert (first.counts[RowVerdict.QUEUED], first.counts[RowVerdict.REJECTED]) == (2, 1)
    assert await redis.zcard(Keys(prefix).queue) == 2
    assert await read_outcomes(redis, prefix) == []  # the rejected row is reported, not recorded

    again, _ = await preview(producer, rows)
    assert again.counts[RowVerdict.REPEAT] == 2
    second = await import_rows(producer, rows)
    assert (second.counts[RowVerdict.QUEUED], second.counts[RowVerdict.REPEAT]) == (0, 2)
    assert await redis.zcard(Keys(prefix).queue) == 2
    record = await producer.status(next(r.job_id for r in second.rows if r.job_id))
    assert record is not None and record.job.metadata in ({"lead": 1}, None)


async def test_a_row_on_a_portal_outside_the_scope_is_rejected(
    redis: Redis, redis_url: str, prefix: str
) -> None:
    """A scoped importer cannot queue on another portal: the row is rejected with the reason."""
    portals = {name: sandbox_portal("https://acme.bitrix24.ru/rest/1/x/", name=name) for name in ("a", "b")}
    producer = Producer(redis, settings=make_settings(redis_url, prefix, portals))
    data = "\n".join(
        json.dumps({"portal": p, "from_line": "L", "to_number": n, "text_to_pronounce": "Hi"})
        for p, n in (("a", "+79111234567"), ("b", "+79111234568"))
    )
    summary = await import_rows(producer, read_rows(data.encode()), scope={"a"})
    assert summary.counts[RowVerdict.QUEUED] == 1
    (bad,) = summary.rejected
    assert bad.line == 2 and "not a portal this token may use" in (bad.reason or "")
    assert bad.number == "+7911***4568"


async def test_a_duplicate_line_and_number_is_recorded(redis: Redis, redis_url: str, prefix: str) -> None:
    """Two rows for the same line and number with different texts: one queued, one duplicate (recorded)."""
    settings = make_settings(
        redis_url, prefix, {"default": sandbox_portal("https://acme.bitrix24.ru/rest/1/x/")}
    )
    data = "from_line,to_number,text_to_pronounce\nL,+79111234567,A\nL,+79111234567,B\n"
    summary = await import_rows(
        Producer(redis, settings=settings), read_rows(data.encode(), filename="d.csv")
    )
    assert (summary.counts[RowVerdict.QUEUED], summary.counts[RowVerdict.DUPLICATE]) == (1, 1)
    assert [o["status"] for o in await read_outcomes(redis, prefix)] == ["duplicate"]


def test_a_file_over_the_caps_is_too_large() -> None:
    """More rows or bytes than the caller's caps (the dashboard's are smaller) fail the file as too large."""
    data = b"from_line,to_number\n" + b"L,+79111234567\n" * 11
    with pytest.raises(FileTooLarge, match="the file has 11 rows; at most 10"):
        read_rows(data, filename="f.csv", max_rows=10)
    with pytest.raises(FileTooLarge, match="at most 100 are imported"):
        read_rows(data, filename="f.csv", max_bytes=100)
    assert len(read_rows(data, filename="f.csv", max_rows=11)) == 11


async def test_a_preview_lets_other_tasks_run(redis: Redis, redis_url: str, prefix: str) -> None:
    """Validating a large file yields to the event loop every :data:`YIELD_EVERY` rows, so that the
    server's other requests (``/healthz``, the API) are answered meanwhile: a task beside it ticks
    between the rows. (Every row here is rejected, so the preview itself does no I/O that would yield.)"""
    settings = make_settings(
        redis_url, prefix, {"default": sandbox_portal("https://acme.bitrix24.ru/rest/1/x/")}
    )
    rows = read_rows(
        b"from_line,to_number,text_to_pronounce\n" + b"L,not a number,Hi\n" * 2000, filename="c.csv"
    )
    finished = False
    ticks = 0

    async def beside() -> None:
        nonlocal ticks
        while not finished:
            ticks += 1
            await asyncio.sleep(0)

    ticker = asyncio.create_task(beside())
    await asyncio.sleep(0)  # the ticker is running
    started = ticks
    summary, _ = await preview(Producer(redis, settings=settings), rows)
    finished = True
    await ticker
    assert summary.counts[RowVerdict.REJECTED] == 2000
    assert ticks - started >= 2000 // YIELD_EVERY - 1


def test_a_cell_over_the_csv_limit_is_a_file_problem() -> None:
    """A CSV cell larger than the csv module's field limit fails the file with a clear problem (no
    ``csv.Error`` escapes to become a 500 or a traceback)."""
    data = b"from_line,to_number,text_to_pronounce\nL,+79111234567," + b"a" * 200_000 + b"\n"
    with pytest.raises(FileProblem, match="cannot be read as CSV: field larger than field limit"):
        read_rows(data, filename="big.csv")
