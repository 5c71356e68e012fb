"""A local Bitrix24 portal (inbound-webhook and OAuth REST API) for tests, demos and benchmarks.

It serves `voximplant.callback.start`, `voximplant.line.get` and `voximplant.tts.voices.get`
at `/rest/{user_id}/{code}/{method}` (and, for portals with `oauth_clients`, at `/rest/{method}`
with an access token from its `/oauth/token/` endpoint, see `ops.sandbox.oauth`), enforces
Bitrix24's per-portal leaky bucket, records every request, and injects faults (errors, raw
bodies, delays, hangs, dropped connections) on demand, in-process or over the `/_sandbox/...`
control API.

Example:
    sandbox = Sandbox([SandboxPortal(name="default", webhooks={(1, "sandboxsecret")})])
    async with running_sandbox(sandbox) as handle:
        url = handle.webhook_url("default") + "voximplant.callback.start"
"""

from ops.sandbox.bucket import LeakyBucket
from ops.sandbox.faults import CALLBACK_START, Fault, FaultKind
from ops.sandbox.oauth import TokenRequest
from ops.sandbox.portal import DEFAULT_LINES, RecordedCall, SandboxPortal
from ops.sandbox.server import SandboxHandle, running_sandbox, serve_forever
from ops.sandbox.state import Sandbox

__all__ = [
    "CALLBACK_START",
    "DEFAULT_LINES",
    "Fault",
    "FaultKind",
    "LeakyBucket",
    "RecordedCall",
    "Sandbox",
    "SandboxHandle",
    "SandboxPortal",
    "TokenRequest",
    "running_sandbox",
    "serve_forever",
]
