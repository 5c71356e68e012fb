"""`callq ... | head -1`: a reader that goes away stops callq quietly, as it does Unix tools."""

from __future__ import annotations

import subprocess
import sys

from tests.support.processes import NEUTRAL_CWD, callq_env


def test_a_closed_pipe_stops_callq_quietly(redis_url: str, prefix: str) -> None:
    """Output to a pipe whose reader left: exit 141 (a closed pipe's status), no traceback on stderr."""
    env = callq_env(
        CALLQ_REDIS_URL=redis_url,
        CALLQ_KEY_PREFIX=prefix,
        CALLQ_WEBHOOK_URL="https://acme.bitrix24.ru/rest/1/c0de77/",
        CALLQ_TIMEZONE="UTC",
    )
    proc = subprocess.Popen(
        [sys.executable, "-m", "ops.cli", "list"],
        env=env,
        cwd=NEUTRAL_CWD,
        stdout=subprocess.PIPE,
        stderr=subprocess.PIPE,
    )
    assert proc.stdout is not None and proc.stderr is not None
    proc.stdout.close()  # the reader leaves before callq writes a line
    with proc.stderr:
        err = proc.stderr.read().decode()
    assert proc.wait(timeout=30) == 141, err
    assert "Traceback" not in err and "BrokenPipeError" not in err, err
