"""The serializer arq reads and writes its own jobs with: JSON, so that any language can read what is
in Redis.

callq's own jobs have no arq job key: the worker runs them from their queue entry alone
(:mod:`schemas.jobqueue.lane`). Up to 0.2, admission wrote one in a short form,
``["<job id>",<enqueue ms>]``; a job admitted then still has it, and it goes with the job's queue
entry (nothing reads it).
"""

from __future__ import annotations

import json
from typing import Any


def dumps(data: Any) -> bytes:
    """arq's job serializer: JSON."""
    return json.dumps(data, separators=(",", ":")).encode()


def loads(raw: bytes) -> Any:
    """arq's job deserializer: JSON."""
    return json.loads(raw)
