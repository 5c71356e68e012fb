"""Where things are: the repository's root, for tests that read its files (wherever the test file sits)."""

from __future__ import annotations

from pathlib import Path

ROOT = Path(__file__).resolve().parents[2]
"""The repository's root (holds pyproject.toml and the four packages)."""

DEPLOY = ROOT / "ops" / "deploy"
"""The deployment files (systemd units, compose, Redis and Prometheus configuration)."""
