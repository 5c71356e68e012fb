"""What tests of and with the sandbox portal (`ops.sandbox`) share: the method and a callback's params, a
JSON POST as callq sends it, the fields of a success answer's `time` object, a running sandbox's parts."""

from __future__ import annotations

from dataclasses import dataclass
from typing import Any

import aiohttp

from ops.sandbox import Sandbox, SandboxHandle

CALLBACK = "voximplant.callback.start"

CALLBACK_PARAMS: dict[str, Any] = {
    "FROM_LINE": "reg1332",
    "TO_NUMBER": "+79111234567",
    "TEXT_TO_PRONOUNCE": "Callback request from the website, connecting you.",
    "VOICE": "ruinternalfemale",
}

TIME_FIELDS = frozenset(
    {
        "start",
        "finish",
        "duration",
        "processing",
        "date_start",
        "date_finish",
        "operating_reset_at",
        "operating",
    }
)
"""The fields of the `time` object of a Bitrix24 success answer."""


async def post_json(
    session: aiohttp.ClientSession, url: str, params: dict[str, Any] | None = None
) -> tuple[int, Any]:
    """POST `params` as JSON, the way callq calls Bitrix24; return the status and the body (decoded if JSON)."""
    async with session.post(url, json=params or {}) as response:
        if response.content_type == "application/json":
            return response.status, await response.json()
        return response.status, await response.text()


@dataclass
class SandboxEnv:
    """A sandbox running on a free port, and a client session: what a test of its HTTP side is given."""

    sandbox: Sandbox
    handle: SandboxHandle
    session: aiohttp.ClientSession
