"""Tests of the sandbox Bitrix24 portal (`ops.sandbox`), plus small shared helpers."""

from __future__ import annotations

from typing import Any

import aiohttp

CALLBACK_PARAMS: dict[str, Any] = {
    "FROM_LINE": "reg1332",
    "TO_NUMBER": "+79111234567",
    "TEXT_TO_PRONOUNCE": "Callback request from the website, connecting you.",
    "VOICE": "ruinternalfemale",
}


class FakeClock:
    """A monotonic clock that moves only when a test says so."""

    def __init__(self, now: float = 1000.0) -> None:
        self.now = now

    def __call__(self) -> float:
        return self.now

    def advance(self, seconds: float) -> None:
        self.now += seconds


async def post_json(
    session: aiohttp.ClientSession, url: str, params: dict[str, Any] | None = None
) -> tuple[int, Any]:
    """POST `params` as JSON, the way callq calls Bitrix24; return the status and the body (decoded if JSON)."""
    async with session.post(url, json=params or {}) as response:
        if response.content_type == "application/json":
            return response.status, await response.json()
        return response.status, await response.text()
