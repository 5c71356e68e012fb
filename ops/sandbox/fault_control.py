"""Queuing faults on a sandbox: the part of `ops.sandbox.state.Sandbox` that the control API's
`/_sandbox/faults` routes and the tests drive (which request fails how is `ops.sandbox.plan`)."""

from __future__ import annotations

from collections.abc import Iterable
from typing import Any

from ops.sandbox.faults import CALLBACK_START, Fault
from ops.sandbox.methods import SUPPORTED_METHODS
from ops.sandbox.plan import FaultPlan, RandomFaults
from ops.sandbox.portal import SandboxPortal


class FaultControl:
    """Adds, lists and clears a sandbox's faults (a base of `Sandbox`, which sets the attributes)."""

    _plan: FaultPlan
    _portals: dict[str, SandboxPortal]

    def add_faults(
        self, faults: Iterable[Fault], *, portal: str | None = None, method: str = CALLBACK_START
    ) -> None:
        """Queue faults: the next matching requests take them, in order.

        Args:
            faults: The faults, first one first.
            portal: Only requests to this portal; None for every portal.
            method: The method they apply to.

        Raises:
            KeyError: If `portal` names no portal.
            ValueError: If `method` is not one the sandbox implements.
        """
        self.check_fault_target(portal, method)
        self._plan.add(faults, portal=portal, method=method)

    def set_random_faults(
        self,
        failure_ratio: float,
        kinds: Iterable[Fault],
        *,
        seed: int | None = None,
        portal: str | None = None,
        method: str = CALLBACK_START,
    ) -> None:
        """Switch on chaos mode (queued faults still come first); replaces an earlier one.

        Args:
            failure_ratio: Probability in [0, 1] that a matching request fails.
            kinds: The faults to choose from, uniformly.
            seed: Seed of the random generator, for reproducible runs.
            portal: Only requests to this portal; None for every portal.
            method: The method it applies to.
        """
        self.check_fault_target(portal, method)
        self._plan.random_mode = RandomFaults(failure_ratio, tuple(kinds), seed, portal, method.lower())

    def set_random_faults_from_dict(self, spec: dict[str, Any]) -> None:
        """Switch on chaos mode from its JSON form (see `RandomFaults.from_dict`)."""
        random_mode = RandomFaults.from_dict(spec)
        self.check_fault_target(random_mode.portal, random_mode.method)
        self._plan.random_mode = random_mode

    def clear_faults(self) -> int:
        """Drop queued faults and chaos mode; return how many queued faults were dropped."""
        return self._plan.clear()

    def faults(self) -> dict[str, Any]:
        """Return the pending faults and chaos mode in their JSON form."""
        return self._plan.to_dict()

    def check_fault_target(self, portal: str | None, method: str) -> None:
        """Fail unless faults can target `portal` (None: all) and `method`.

        A fault aimed at a missing portal or method would sit idle; this says so at once.

        Raises:
            KeyError: If `portal` names no portal.
            ValueError: If `method` is not one the sandbox implements.
        """
        if portal is not None and portal not in self._portals:
            raise KeyError(f"unknown portal {portal!r}")
        if method.lower() not in SUPPORTED_METHODS:
            raise ValueError(f"faults can target only {sorted(SUPPORTED_METHODS)}, not {method!r}")
