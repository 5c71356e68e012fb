"""Fault plans: the queue of upcoming faults plus the optional random (chaos) mode.

The next request for a method on a portal takes the first queued fault that targets both
(a fault with `portal=None` targets every portal); only when none matches does chaos mode roll
its dice, with its own seeded generator so that a run can be repeated exactly.
"""

from __future__ import annotations

import random
from collections.abc import Iterable, Mapping
from dataclasses import dataclass, field
from typing import Any

from ops.sandbox.faults import CALLBACK_START, Fault


@dataclass(frozen=True, slots=True)
class QueuedFault:
    """A fault waiting in the queue, with the requests it applies to."""

    fault: Fault
    portal: str | None = None
    method: str = CALLBACK_START

    def matches(self, portal: str, method: str) -> bool:
        """Say whether this fault applies to a request for `method` on `portal`."""
        return self.method == method and self.portal in (None, portal)

    def to_dict(self) -> dict[str, Any]:
        """Return the JSON form, the fault's fields plus `portal` and `method`."""
        return {**self.fault.to_dict(), "portal": self.portal, "method": self.method}


@dataclass(slots=True)
class RandomFaults:
    """Chaos mode: each matching request fails with probability `failure_ratio`."""

    failure_ratio: float
    kinds: tuple[Fault, ...]
    seed: int | None = None
    portal: str | None = None
    method: str = CALLBACK_START
    _rng: random.Random = field(init=False, repr=False)

    def __post_init__(self) -> None:
        if not 0.0 <= self.failure_ratio <= 1.0:
            raise ValueError(f"failure_ratio must be within [0, 1], got {self.failure_ratio}")
        if not self.kinds:
            raise ValueError("random faults need at least one fault to choose from")
        self._rng = random.Random(self.seed)

    def draw(self, portal: str, method: str) -> Fault | None:
        """Roll the dice for one request; None means the request goes through untouched."""
        if self.method != method or self.portal not in (None, portal):
            return None
        if self._rng.random() >= self.failure_ratio:
            return None
        return self._rng.choice(self.kinds)

    @classmethod
    def from_dict(cls, spec: Mapping[str, Any]) -> RandomFaults:
        """Build chaos mode from `{"failure_ratio", "kinds": [fault specs], "seed", "portal", "method"}`.

        Raises:
            ValueError: If a field is missing or invalid.
        """
        try:
            kinds = tuple(Fault.from_dict(kind) for kind in spec["kinds"])
            seed = spec.get("seed")
            return cls(
                failure_ratio=float(spec["failure_ratio"]),
                kinds=kinds,
                seed=None if seed is None else int(seed),
                portal=spec.get("portal"),
                method=str(spec.get("method", CALLBACK_START)).lower(),
            )
        except KeyError as exc:
            raise ValueError(f"random fault spec is missing field {exc.args[0]!r}") from exc

    def to_dict(self) -> dict[str, Any]:
        """Return the JSON form (the random generator's position is not included)."""
        return {
            "failure_ratio": self.failure_ratio,
            "kinds": [kind.to_dict() for kind in self.kinds],
            "seed": self.seed,
            "portal": self.portal,
            "method": self.method,
        }


@dataclass(slots=True)
class FaultPlan:
    """The queue of upcoming faults plus the optional chaos mode."""

    queue: list[QueuedFault] = field(default_factory=list)
    random_mode: RandomFaults | None = None

    def add(
        self, faults: Iterable[Fault], *, portal: str | None = None, method: str = CALLBACK_START
    ) -> None:
        """Append faults; the next matching requests take them in order."""
        self.queue.extend(QueuedFault(fault, portal, method.lower()) for fault in faults)

    def take(self, portal: str, method: str) -> Fault | None:
        """Pop the fault for the next request, queued faults first, then chaos mode."""
        for index, queued in enumerate(self.queue):
            if queued.matches(portal, method):
                del self.queue[index]
                return queued.fault
        if self.random_mode is not None:
            return self.random_mode.draw(portal, method)
        return None

    def clear(self) -> int:
        """Drop every queued fault and chaos mode; return how many queued faults were dropped."""
        dropped = len(self.queue)
        self.queue.clear()
        self.random_mode = None
        return dropped

    def to_dict(self) -> dict[str, Any]:
        """Return `{"pending": [...], "random": {...} | None}` for the control API."""
        return {
            "pending": [queued.to_dict() for queued in self.queue],
            "random": None if self.random_mode is None else self.random_mode.to_dict(),
        }
