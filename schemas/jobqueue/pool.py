"""arq's Redis connection pool for callq: its JSON job format, its queue name, its retries."""

from __future__ import annotations

import asyncio
import itertools
import logging

from arq.connections import ArqRedis, RedisSettings, create_pool
from redis.asyncio import Redis
from redis.asyncio.retry import Retry as RedisRetry
from redis.backoff import ExponentialBackoff
from redis.exceptions import ConnectionError as RedisConnectionError
from redis.exceptions import RedisError
from redis.exceptions import TimeoutError as RedisTimeoutError

from schemas.jobqueue.names import QueueNames
from schemas.jobqueue.payload import dumps, loads
from schemas.store.connect import parse_sentinel_url, redis_client
from schemas.store.errors import write_refusal
from schemas.store.packing import pack_with_hiredis

logger = logging.getLogger("callq.dispatch")

CONNECT_TIMEOUT_S = 5
COMMAND_RETRIES = 20
"""A Redis restart or failover must not kill a job half-way: each command is retried with backoff
(0.1 s doubling to 5 s) for about a minute. callq's state changes are scripts that find their own
earlier run (a repeated FINALIZE finds the job final; a repeated START finds the attempt it
started, by its token), so a command repeated after a lost reply does no harm."""
CONNECT_RETRIES = 30


async def open_pool(redis_url: str, names: QueueNames) -> Redis:
    """A Redis client (arq's ``ArqRedis``) for ``redis_url``, plain or Sentinel, with callq's job
    serializer and queue name."""
    target = parse_sentinel_url(redis_url)
    if target is None:
        settings = RedisSettings.from_dsn(redis_url)
    else:
        settings = RedisSettings(
            host=list(target.sentinels),
            sentinel=True,
            sentinel_master=target.master,
            database=target.db,
            username=target.username,
            password=target.password,
        )
    settings.conn_timeout = CONNECT_TIMEOUT_S
    settings.retry = RedisRetry(ExponentialBackoff(cap=5.0, base=0.1), retries=COMMAND_RETRIES)
    settings.retry_on_error = [RedisConnectionError, RedisTimeoutError, ConnectionError, OSError]
    settings.conn_retries = 0  # retried here: a Redis that refuses writes is not retried
    for retry in itertools.count(1):
        try:
            pool: ArqRedis = await create_pool(
                settings, job_serializer=dumps, job_deserializer=loads, default_queue_name=names.queue
            )
            await pack_with_hiredis(pool)  # the worker's scripts take many arguments: pack them in C
            return pool
        except (RedisError, OSError, TimeoutError) as exc:
            if write_refusal(exc) is not None:
                # arq's create_pool tests the pool with PING, which Redis refuses under MISCONF: Redis
                # answers, and the worker waits out the refusal where it writes
                unchecked = _unchecked_pool(redis_url, settings, names)
                await pack_with_hiredis(unchecked)
                return unchecked
            if retry > CONNECT_RETRIES:
                raise
            logger.warning(
                "redis connection error: %s, %s retries remaining",
                type(exc).__name__,
                CONNECT_RETRIES - retry,
            )
        await asyncio.sleep(settings.conn_retry_delay)
    raise AssertionError("unreachable")


def _unchecked_pool(redis_url: str, settings: RedisSettings, names: QueueNames) -> ArqRedis:
    """The client arq's ``create_pool`` makes, without its PING."""
    client = redis_client(
        redis_url,
        socket_connect_timeout=CONNECT_TIMEOUT_S,
        retry=settings.retry,
        retry_on_error=settings.retry_on_error,
        encoding="utf8",
    )
    return ArqRedis(
        client.connection_pool,
        job_serializer=dumps,
        job_deserializer=loads,
        default_queue_name=names.queue,
    )
