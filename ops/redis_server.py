"""A private ``redis-server`` process: for tests that restart, crash, fill or persist Redis or check a
shipped config file, for benchmarks, and for the sandbox demo's throwaway Redis (``ops.cli.redis_check``).
Also the one way callq's code and tests find a free TCP port (:func:`free_port`)."""

from __future__ import annotations

import shutil
import socket
import subprocess
import time
from pathlib import Path
from types import TracebackType
from typing import Self

import redis as sync_redis


def free_port() -> int:
    """A TCP port free on loopback now."""
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        return int(sock.getsockname()[1])


class RedisServer:
    """Start, stop, kill and restart a ``redis-server`` on a free port, data under ``workdir``.

    Args:
        workdir: directory for its AOF/RDB files and log.
        appendonly: turn on AOF with ``appendfsync everysec`` (what the ops config uses).
        port: a fixed port (a restart keeps the port); a free one by default.
        extra_args: more redis-server arguments (``--replicaof host port``, ``--sentinel``…).
        password: ``requirepass``; :attr:`url` then carries it.
        config: a ``redis.conf`` (or ``sentinel.conf``) to start from: its settings stand, ``appendonly``
            and the test defaults (no snapshots, a log file in ``workdir``) are not added; ``extra_args``
            still override it. Whatever it says, the server listens on loopback, on :attr:`port`.
    """

    def __init__(
        self,
        workdir: Path,
        *,
        appendonly: bool = False,
        port: int | None = None,
        extra_args: tuple[str, ...] = (),
        password: str | None = None,
        config: Path | None = None,
    ) -> None:
        self.workdir = workdir
        self.password = password
        self.appendonly = appendonly
        self.extra_args = extra_args
        self.config = config
        self.port = port or free_port()
        self.process: subprocess.Popen[bytes] | None = None

    @property
    def url(self) -> str:
        """redis:// URL of this server (with its password, if it has one)."""
        auth = f":{self.password}@" if self.password else ""
        return f"redis://{auth}127.0.0.1:{self.port}/0"

    def argv(self) -> list[str]:
        """The command line that starts it."""
        binary = shutil.which("redis-server")
        assert binary, "redis-server is not installed"
        args = [binary] if self.config is None else [binary, str(self.config)]
        args += ["--dir", str(self.workdir)]
        if self.config is None:
            appendonly = "yes" if self.appendonly else "no"
            args += [
                "--save",
                "",
                "--logfile",
                "redis.log",
                "--appendonly",
                appendonly,
                "--appendfsync",
                "everysec",
            ]
        args += [*self.extra_args, "--port", str(self.port), "--bind", "127.0.0.1"]
        if self.password:
            args += ["--requirepass", self.password]
        return args

    def start(self, *, timeout_s: float = 10.0) -> None:
        """Start and wait until it answers PING."""
        self.process = subprocess.Popen(self.argv(), stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL)
        deadline = time.monotonic() + timeout_s
        client = sync_redis.Redis(port=self.port, password=self.password, socket_connect_timeout=0.2)
        try:
            while True:
                try:
                    if client.ping():
                        return
                except sync_redis.RedisError:
                    if time.monotonic() > deadline or self.process.poll() is not None:
                        raise
                time.sleep(0.02)
        finally:
            client.close()

    def stop(self, *, kill: bool = False) -> None:
        """Stop it (SIGKILL with ``kill``, losing what was not yet on disk)."""
        if self.process is None:
            return
        if kill:
            self.process.kill()
        else:
            self.process.terminate()
        self.process.wait(timeout=10)
        self.process = None

    def restart(self, *, kill: bool = False) -> None:
        """Stop and start again on the same port and data directory."""
        self.stop(kill=kill)
        self.start()

    def __enter__(self) -> Self:
        self.start()
        return self

    def __exit__(
        self, exc_type: type[BaseException] | None, exc: BaseException | None, tb: TracebackType | None
    ) -> None:
        self.stop()
