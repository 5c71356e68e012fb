"""The write gate (:mod:`schemas.store.writegate`): one log line per fullness, a shared backoff, writes kept
until Redis takes them. No Redis: a refusal is redis-py's ``OutOfMemoryError``, raised by the test."""

from __future__ import annotations

import asyncio

import pytest
from redis.exceptions import ConnectionError as RedisConnectionError
from redis.exceptions import OutOfMemoryError, ReadOnlyError, ResponseError
from structlog.testing import capture_logs

from schemas.store.errors import REDIS_FULL, REFUSALS, Refusal, describe_redis_error, write_refusal
from schemas.store.writegate import WriteGate
from tests.support.helpers import FakeClock


def test_a_full_redis_is_logged_once_and_reported_to_the_gauge() -> None:
    """Many refusals log one redis.full and call on_change(True) once; the heartbeat's success logs
    redis.writable and on_change(False)."""
    changes: list[Refusal | None] = []
    clock = FakeClock(100.0)
    gate = WriteGate(on_change=changes.append, clock=clock)
    with capture_logs() as logs:
        for where in ("claim", "heartbeat", "finalize", "claim"):
            gate.refused(where)
            clock.now += 0.1
        clock.now += 7.0
        gate.accepted()
        gate.accepted()
    assert [(e["event"], e.get("where")) for e in logs] == [("redis.full", "claim"), ("redis.writable", None)]
    assert logs[1]["refused_for_s"] == 7.4
    assert changes == [Refusal.FULL, None]
    assert not gate.full and gate.due() and gate.wait_s() == 0


def test_tries_while_full_back_off_doubling_to_a_cap_once_per_round() -> None:
    """The wait doubles per refused round (0.5, 1, 2, 4, 5, 5 s); refusals within one round count once."""
    clock = FakeClock(100.0)
    gate = WriteGate(clock=clock, first_wait_s=0.5, max_wait_s=5.0)
    waits = []
    for _round in range(6):
        gate.refused("claim")
        gate.refused("heartbeat")  # the same round: no extra doubling
        waits.append(gate.wait_s())
        assert not gate.due()
        clock.now += gate.wait_s()
        assert gate.due()
    assert waits == [0.5, 1.0, 2.0, 4.0, 5.0, 5.0]


async def test_until_written_keeps_a_write_until_redis_takes_it() -> None:
    """A refused write is sent again after the gate's wait, once held (logged once), and returns its result."""
    gate = WriteGate(first_wait_s=0.01, max_wait_s=0.02)
    tries = 0

    async def write() -> str:
        nonlocal tries
        tries += 1
        if tries < 4:
            raise OutOfMemoryError("command not allowed when used memory > 'maxmemory'.")
        return "written"

    with capture_logs() as logs:
        assert await gate.until_written(write, where="finalize") == "written"
    assert tries == 4
    assert [e["event"] for e in logs] == ["redis.full", "redis.write_held"]
    assert gate.full, "only a write that always writes (heartbeat, claim) says Redis takes writes again"


async def test_a_held_write_gives_up_when_cancelled() -> None:
    """Cancelled while it waits (the process stops), a held write gives up at once."""
    gate = WriteGate(first_wait_s=60)

    async def refused() -> None:
        raise OutOfMemoryError("command not allowed when used memory > 'maxmemory'.")

    with capture_logs() as logs:
        task = asyncio.create_task(gate.until_written(refused, where="finalize"))
        await asyncio.sleep(0)
        await asyncio.sleep(0)
        task.cancel()
        with pytest.raises(asyncio.CancelledError):
            await task
    assert [e["event"] for e in logs] == ["redis.full", "redis.write_held"]
    assert logs[-1]["where"] == "finalize"


async def test_other_errors_are_not_retried() -> None:
    """Only a refusal for memory is waited out; anything else reaches the caller at once."""
    gate = WriteGate(first_wait_s=0.01)

    async def broken() -> None:
        raise ConnectionError("gone")

    with pytest.raises(ConnectionError):
        await gate.until_written(broken, where="finalize")
    assert not gate.full


@pytest.mark.parametrize(
    ("error", "expected"),
    [
        (OutOfMemoryError("command not allowed when used memory > 'maxmemory'."), REDIS_FULL),
        (
            OutOfMemoryError(
                'Command # 1 (EVALSHA abc 7 callq:job:x {"to_number":"+79111234567"}) of pipeline caused '
                "error: (\"command not allowed when used memory > 'maxmemory'.\",)"
            ),
            REDIS_FULL,
        ),
        (
            ResponseError(
                "Command # 2 (HSET callq:job:x to_number +79111234567) of pipeline caused error: WRONGTYPE "
                "Operation against a key holding the wrong kind of value"
            ),
            "ResponseError: WRONGTYPE Operation against a key holding the wrong kind of value",
        ),
        (
            RedisConnectionError("Error 111 connecting to 127.0.0.1:1.\nRefused."),
            "ConnectionError: Error 111 connecting to 127.0.0.1:1. Refused.",
        ),
    ],
    ids=["full", "full-in-pipeline", "pipeline", "connection"],
)
def test_redis_errors_are_described_without_what_was_sent(error: Exception, expected: str) -> None:
    """One line that says what is wrong and never the command or its arguments (a number, a job)."""
    text = describe_redis_error(error)
    assert text == expected
    assert "79111234567" not in text and "\n" not in text


MISCONF = (
    "MISCONF Redis is configured to save RDB snapshots, but it's currently unable to persist to disk. "
    "Commands that may modify the data set are disabled"
)


@pytest.mark.parametrize(
    ("error", "expected"),
    [
        (OutOfMemoryError("command not allowed when used memory > 'maxmemory'."), Refusal.FULL),
        (ReadOnlyError("You can't write against a read only replica."), Refusal.READONLY),
        (ResponseError(MISCONF), Refusal.MISCONF),
        (ResponseError(f"{MISCONF} script: 2466aaf8, on @user_script:1."), Refusal.MISCONF),
        (
            ResponseError(
                f'Command # 1 (EVALSHA abc 1 callq:job:x +79111234567) of pipeline caused error: ("{MISCONF}",)'
            ),
            Refusal.MISCONF,
        ),
        (ResponseError("NOREPLICAS Not enough good replicas to write."), Refusal.NOREPLICAS),
        (
            ResponseError(
                "Command # 1 (SET a 1) of pipeline caused error: ('NOREPLICAS Not enough good replicas to write.',)"
            ),
            Refusal.NOREPLICAS,
        ),
        (
            ResponseError(
                "UNBLOCKED force unblock from blocking operation, instance state changed (master -> replica?)"
            ),
            Refusal.READONLY,
        ),
        (ResponseError("UNBLOCKED client unblocked via CLIENT UNBLOCK"), None),
        (ResponseError("WRONGTYPE Operation against a key holding the wrong kind of value"), None),
        (ResponseError("ERR MISCONF is not a prefix here"), None),
        (RedisConnectionError("Error 111 connecting"), None),
        (ValueError("NOREPLICAS"), None),
    ],
    ids=[
        "oom",
        "readonly",
        "misconf",
        "misconf-in-script",
        "misconf-in-pipeline",
        "noreplicas",
        "noreplicas-in-pipeline",
        "became-replica-while-blocked",
        "client-unblock",
        "wrongtype",
        "err",
        "connection",
        "not-redis",
    ],
)
def test_one_classification_tells_every_refusal_of_writes(error: Exception, expected: Refusal | None) -> None:
    """write_refusal names why Redis refuses writes from the class or Redis's error prefix, wherever
    redis-py put it (plain, in a script's error, in a pipeline's), and nothing else."""
    assert write_refusal(error) is expected
    if expected is not None:
        assert describe_redis_error(error) == REFUSALS[expected]


def test_another_refusal_is_logged_with_its_reason_and_the_gauge_told() -> None:
    """A refusal other than memory logs redis.writes_refused with its reason, once; a change of reason
    is logged again; the first accepted write ends it."""
    changes: list[Refusal | None] = []
    gate = WriteGate(on_change=changes.append, clock=FakeClock(0.0))
    with capture_logs() as logs:
        gate.refused("claim", Refusal.READONLY)
        gate.refused("heartbeat", Refusal.READONLY)
        gate.refused("heartbeat", Refusal.NOREPLICAS)
        gate.accepted()
    assert [(e["event"], e.get("reason")) for e in logs] == [
        ("redis.writes_refused", "readonly"),
        ("redis.writes_refused", "noreplicas"),
        ("redis.writable", "noreplicas"),
    ]
    assert changes == [Refusal.READONLY, Refusal.NOREPLICAS, None]
    assert not gate.refusing
