"""arq's Redis connection pool for callq: its JSON job format, its queue name, its retries."""

from __future__ import annotations

from arq.connections import ArqRedis, RedisSettings, create_pool
from redis.asyncio import Redis
from redis.asyncio.retry import Retry as RedisRetry
from redis.backoff import ExponentialBackoff
from redis.exceptions import ConnectionError as RedisConnectionError
from redis.exceptions import TimeoutError as RedisTimeoutError

from schemas.jobqueue.names import QueueNames
from schemas.jobqueue.payload import dumps, loads
from schemas.store.connect import parse_sentinel_url
from schemas.store.packing import pack_with_hiredis

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
    settings.conn_retries = CONNECT_RETRIES
    pool: ArqRedis = await create_pool(
        settings, job_serializer=dumps, job_deserializer=loads, default_queue_name=names.queue
    )
    await pack_with_hiredis(pool)  # the worker's scripts take many arguments: pack them in C
    return pool
