"""What a verb of the ``callq`` command is, and the Redis client the verbs that read or write jobs share."""

from __future__ import annotations

import argparse
import sys
from collections.abc import Awaitable, Callable
from dataclasses import dataclass

from redis.asyncio import Redis
from redis.exceptions import RedisError

from schemas.config import Settings
from schemas.store.connect import close_client, redis_client
from schemas.store.errors import describe_redis_error

Run = Callable[[argparse.Namespace, Settings], Awaitable[int]]
WithRedis = Callable[[argparse.Namespace, Settings, Redis], Awaitable[int]]


def never(_args: argparse.Namespace) -> bool:
    """The default of :attr:`Verb.throwaway_redis`."""
    return False


@dataclass(frozen=True)
class Verb:
    """One verb of ``callq``.

    Attributes:
        name: the verb (``callq NAME``).
        help: one line for ``callq --help``.
        add_arguments: its options.
        run: runs it; returns the exit code.
        needs_redis: check first that Redis answers (and say what to do if not).
        throwaway_redis: start a private ``redis-server`` when none answers (the sandbox demo).
        masks_output: what it prints goes through the masking stream (the sandbox prints its own
            webhook URL on purpose: a local test portal's code).
    """

    name: str
    help: str
    add_arguments: Callable[[argparse.ArgumentParser], None]
    run: Run
    needs_redis: bool = True
    throwaway_redis: Callable[[argparse.Namespace], bool] = never
    masks_output: bool = True


def with_redis(run: WithRedis) -> Run:
    """``run`` with a Redis client for the configured URL: one line and exit 2 on a Redis error."""

    async def wrapped(args: argparse.Namespace, settings: Settings) -> int:
        redis = redis_client(settings.redis_url)
        try:
            return await run(args, settings, redis)
        except RedisError as exc:
            print(f"callq {args.command}: {describe_redis_error(exc)}", file=sys.stderr)
            return 2
        finally:
            await close_client(redis)

    return wrapped
