"""A callq worker process as ``callq worker`` runs it: the worker, with the intake stream reader.

The worker (:mod:`worker`) and the ways in (:mod:`producers`) never import each other; the process
that runs both is put together here, on top of them.
"""

from __future__ import annotations

from redis.asyncio import Redis

from producers.api import Producer
from producers.stream import IntakeConsumer, keep_consuming
from schemas.config import Settings
from schemas.store.keys import Keys
from worker.service.app import BuiltWorker, Service, ServiceContext, WorkerOptions, build_worker
from worker.service.metrics import Metrics


def intake_service(settings: Settings, options: WorkerOptions) -> Service:
    """The intake stream reader, as a background service of the worker."""

    async def run(context: ServiceContext) -> None:
        producer = Producer(context.redis, settings=settings, dedupe_and_pacing=options.dedupe_and_rate_limit)
        consumer = IntakeConsumer(
            context.redis,
            producer=producer,
            keys=Keys(settings.key_prefix),
            block_ms=options.intake_block_ms,
            on_admitted=lambda status: context.metrics.intake_entries.labels(result=status).inc(),
        )
        await keep_consuming(consumer, context.stop, context.gate)

    return run


def worker_services(settings: Settings, options: WorkerOptions) -> list[Service]:
    """The background services of a worker process: the intake, unless ``--no-intake``."""
    return [intake_service(settings, options)] if options.intake else []


def build_callq_worker(
    settings: Settings, redis: Redis, options: WorkerOptions | None = None, metrics: Metrics | None = None
) -> BuiltWorker:
    """A worker as ``callq worker`` builds it (with the intake unless ``options.intake`` is off)."""
    options = options or WorkerOptions()
    return build_worker(settings, redis, options, metrics, worker_services(settings, options))
