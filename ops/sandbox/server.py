"""Running the sandbox portal: an async context manager for tests and a serve-forever helper."""

from __future__ import annotations

import asyncio
from collections.abc import AsyncIterator, Callable
from contextlib import asynccontextmanager
from dataclasses import dataclass

import structlog
from aiohttp import web

from ops.sandbox.redact import mask_url_secret
from ops.sandbox.state import Sandbox

log = structlog.get_logger(__name__)

# Hanging requests are released on shutdown, so cleanup should never need this long.
_SHUTDOWN_TIMEOUT_S = 5.0


@dataclass(frozen=True, slots=True)
class SandboxHandle:
    """A running sandbox: its state and where it listens.

    Attributes:
        sandbox: The state behind the server.
        base_url: For example `http://127.0.0.1:54321`.
    """

    sandbox: Sandbox
    base_url: str

    def webhook_url(self, portal: str = "default") -> str:
        """Return the inbound webhook base URL of a portal (its first webhook).

        Args:
            portal: The portal's name.

        Returns:
            For example `http://127.0.0.1:54321/rest/1/sandboxsecret/`.

        Raises:
            KeyError: If there is no such portal.
        """
        user_id, code = self.sandbox.portals[portal].first_webhook()
        return f"{self.base_url}/rest/{user_id}/{code}/"


def _url_host(host: str) -> str:
    if host in ("", "0.0.0.0"):  # a wildcard bind is reached through loopback
        return "127.0.0.1"
    if host == "::":
        return "[::1]"
    return f"[{host}]" if ":" in host else host


@asynccontextmanager
async def running_sandbox(
    sandbox: Sandbox, host: str = "127.0.0.1", port: int = 0
) -> AsyncIterator[SandboxHandle]:
    """Serve `sandbox` over HTTP for the duration of the `async with` block.

    Args:
        sandbox: The state to serve.
        host: Address to bind.
        port: Port to bind; 0 picks a free one.

    Yields:
        The handle with the real base URL. On exit the server stops, dropping the
        connections of hanging requests.
    """
    runner = web.AppRunner(
        sandbox.app(), access_log=None, handler_cancellation=True, shutdown_timeout=_SHUTDOWN_TIMEOUT_S
    )
    await runner.setup()
    try:
        site = web.TCPSite(runner, host, port)
        await site.start()
        bound_port = runner.addresses[0][1]
        yield SandboxHandle(sandbox, f"http://{_url_host(host)}:{bound_port}")
    finally:
        await runner.cleanup()


async def serve_forever(
    sandbox: Sandbox,
    host: str = "127.0.0.1",
    port: int = 0,
    *,
    on_ready: Callable[[SandboxHandle], None] | None = None,
    stop: asyncio.Event | None = None,
) -> None:
    """Serve `sandbox` until cancelled (or until `stop` is set), logging where it listens.

    The log line masks webhook codes; `on_ready` receives the handle with the full URLs, e.g.
    to print them for a human.

    Args:
        sandbox: The state to serve.
        host: Address to bind.
        port: Port to bind; 0 picks a free one.
        on_ready: Called once the server listens.
        stop: Return cleanly once this event is set.
    """
    async with running_sandbox(sandbox, host, port) as handle:
        webhooks = {
            name: mask_url_secret(handle.webhook_url(name), portal.first_webhook()[1])
            for name, portal in sandbox.portals.items()
        }
        log.info("sandbox.listening", base_url=handle.base_url, webhooks=webhooks)
        if on_ready is not None:
            on_ready(handle)
        await (stop or asyncio.Event()).wait()
        log.info("sandbox.stopping", base_url=handle.base_url)
