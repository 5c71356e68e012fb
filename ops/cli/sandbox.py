"""``callq sandbox``: a local Bitrix24 portal for demos and tests (:mod:`ops.sandbox.cli`)."""

from __future__ import annotations

import argparse

from ops.cli.verb import Verb
from ops.sandbox import cli as sandbox_cli
from schemas.config import Settings


async def run(args: argparse.Namespace, _settings: Settings) -> int:
    """Serve the sandbox portal until SIGTERM or SIGINT."""
    return await sandbox_cli.run(args)


VERB = Verb(
    name="sandbox",
    help="run a local Bitrix24 portal for demos and tests",
    add_arguments=sandbox_cli.add_arguments,
    run=run,
    needs_redis=False,
    masks_output=False,
)
