"""arq's stored job for a callq job, and the serializer arq reads and writes jobs with.

arq's own encoding of a callq job, ``{"t":null,"f":"callq.run_callback","a":["<id>"],"k":{},"et":<ms>}``,
is twice as long as it needs to be and, over 44 bytes, cannot be stored inline with its key's value
object; every scheduled job has one (issue 7's memory target). Admission writes it short,
``["<job id>",<enqueue ms>]``, and the deserializer expands it back to arq's fields. Everything is
JSON, so that any language can read what is in Redis.
"""

from __future__ import annotations

import json
from typing import Any

from schemas.jobqueue.names import FUNCTION


def stored_job(job_id: str, enqueue_ms: int) -> str:
    """arq's job key value for a callq job, written short."""
    return json.dumps([job_id, enqueue_ms], separators=(",", ":"))


def job_fields(data: Any) -> Any:
    """arq's job fields (arq ``deserialize_job_raw``) from a decoded :func:`stored_job`; anything else
    (a job arq encoded itself) is returned unchanged."""
    if isinstance(data, list) and len(data) == 2:
        job_id, enqueue_ms = data
        return {"t": None, "f": FUNCTION, "a": [job_id], "k": {}, "et": enqueue_ms}
    return data


def dumps(data: Any) -> bytes:
    """arq's job serializer: JSON."""
    return json.dumps(data, separators=(",", ":")).encode()


def loads(raw: bytes) -> Any:
    """arq's job deserializer: JSON, the short form expanded."""
    return job_fields(json.loads(raw))
