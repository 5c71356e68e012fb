"""The deployment files under ops/deploy/ in the real programs: Redis starts with the shipped redis.conf
and sentinel.conf, promtool accepts the Prometheus files (each skipped where the program is missing)."""

from __future__ import annotations

import contextlib
import shutil
import subprocess
from collections.abc import Iterator
from pathlib import Path
from typing import Any, cast

import pytest
import redis as sync_redis

from ops.redis_server import RedisServer
from tests.support.paths import DEPLOY
from tests.support.yaml_subset import load_yaml


@contextlib.contextmanager
def run_redis(workdir: Path, config: Path, *overrides: str) -> Iterator[sync_redis.Redis]:
    """Start ``redis-server CONFIG OVERRIDES`` on a free loopback port; yield a client; shut it down."""
    if shutil.which("redis-server") is None:
        pytest.skip("redis-server is not installed")
    with RedisServer(workdir, config=config, extra_args=overrides) as server:
        client = sync_redis.Redis(port=server.port, socket_connect_timeout=1, decode_responses=True)
        try:
            yield client
        finally:
            client.close()


def test_redis_starts_with_the_shipped_config_and_the_compose_overrides(tmp_path: Path) -> None:
    """A real redis-server accepts redis.conf plus compose's overrides, and runs as the file says."""
    command = load_yaml(DEPLOY / "compose.yaml")["services"]["redis"]["command"]
    overrides = [str(tmp_path) if arg == "/data" else arg for arg in command[2:]]
    with run_redis(tmp_path, DEPLOY / "redis" / "redis.conf", *overrides) as client:
        config = cast(dict[str, str], client.config_get("*"))
        assert (config["appendonly"], config["appendfsync"]) == ("yes", "everysec")
        assert config["maxmemory-policy"] == "noeviction" and int(config["maxmemory"]) > 0
        assert config["protected-mode"] == "no" and config["dir"] == str(tmp_path)


def test_sentinel_starts_with_the_shipped_config(tmp_path: Path) -> None:
    """A real Sentinel accepts sentinel.conf (a writable copy, on loopback) and watches `callq`."""
    conf = tmp_path / "sentinel.conf"
    shutil.copy(DEPLOY / "redis" / "sentinel.conf", conf)
    with run_redis(tmp_path, conf, "--sentinel") as client:
        master = cast(Any, client).sentinel_master("callq")  # untyped in redis-py
        assert int(master["quorum"]) == 2


def test_promtool_checks_config_and_rule_tests() -> None:
    """promtool accepts prometheus.yml and alerts_test.yml's scripted series fire the expected alerts."""
    promtool = shutil.which("promtool")
    if promtool is None:
        pytest.skip("promtool is not installed (Debian: apt-get install prometheus)")
    for args in (["check", "config", "prometheus.yml"], ["test", "rules", "alerts_test.yml"]):
        done = subprocess.run(
            [promtool, *args],
            cwd=DEPLOY / "prometheus",
            capture_output=True,
            text=True,
            timeout=60,
            check=False,
        )
        assert done.returncode == 0, done.stdout + done.stderr
