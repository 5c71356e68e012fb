"""Configuration: command-line flag > CALLQ_* environment variable > TOML file > built-in default.

The CLI loads it once, `load_settings(os.environ, overrides=...)`, into frozen objects; nothing here
reads `os.environ` itself. Every problem raises one `ConfigError` naming the file (or variable) and
the key, for example `callq.toml: portals.acme.rate: must be a positive number, got "fast"`.
Secrets (webhook codes, OAuth secrets, API tokens, Redis passwords) never appear in a message or repr.

The work is split by concern: `settings` holds the frozen objects and errors, `toml` reads and
validates the TOML tables, `env` applies the CALLQ_* variables and precedence, `tokens` reads the
serve tokens, `loopback` decides loopback hosts; `fingerprint`, `registry` and `drift` detect
processes of one deployment that run different configurations. Import the settings from this
module: everything public is re-exported here.
"""

from __future__ import annotations

from collections.abc import Mapping
from pathlib import Path
from types import MappingProxyType

from schemas.config.env import (
    _choose,
    _env_or_toml,
    _key_prefix,
    _locate,
    _portals,
    _redis_url,
)
from schemas.config.settings import (
    DEFAULT_CONFIG_NAME,
    DEFAULT_KEY_PREFIX,
    DEFAULT_PORTAL,
    DEFAULT_REDIS_URL,
    DEFAULT_TOKEN_URL,
    MAX_TEXT_CHARS,
    MIN_API_TOKEN_CHARS,
    ApiToken,
    CallsConfig,
    ConfigError,
    LineConfig,
    OAuthConfig,
    PortalConfig,
    Settings,
    UnknownPortalError,
    check_api_tokens,
    token_fingerprint,
)
from schemas.config.tokens import read_api_tokens
from schemas.config.toml import _TOP_KEYS, _read_toml, _Table
from schemas.policy.redact import redact_redis_url, redact_webhook_url

__all__ = [
    "DEFAULT_CONFIG_NAME",
    "DEFAULT_KEY_PREFIX",
    "DEFAULT_PORTAL",
    "DEFAULT_REDIS_URL",
    "DEFAULT_TOKEN_URL",
    "MAX_TEXT_CHARS",
    "MIN_API_TOKEN_CHARS",
    "OVERRIDE_KEYS",
    "ApiToken",
    "CallsConfig",
    "ConfigError",
    "LineConfig",
    "OAuthConfig",
    "PortalConfig",
    "Settings",
    "UnknownPortalError",
    "check_api_tokens",
    "load_settings",
    "redact_redis_url",
    "redact_webhook_url",
    "token_fingerprint",
]

OVERRIDE_KEYS = frozenset({"redis_url", "key_prefix", "config_path"})


def load_settings(
    environ: Mapping[str, str],
    *,
    overrides: Mapping[str, object] | None = None,
    config_path: Path | None = None,
    cwd: Path | None = None,
) -> Settings:
    """Load the settings once: command-line flag > environment variable > TOML file > default.

    Args:
        environ: The environment (the CLI passes `os.environ`); only `CALLQ_*` variables are read
            and an empty one counts as unset.
        overrides: Command-line flags: `redis_url`, `key_prefix`, `config_path`; None values are
            ignored.
        config_path: The TOML file to read, like the `config_path` flag.
        cwd: Directory that relative paths and the default `./callq.toml` are resolved against
            (default: the process's working directory).

    Returns:
        Frozen settings. Zero portals is allowed; `Settings.portal()` then raises.

    Raises:
        ConfigError: One message naming the file (or variable) and the key; no secret in it.
    """
    flags = {key: value for key, value in (overrides or {}).items() if value is not None}
    if unknown := sorted(set(flags) - OVERRIDE_KEYS):
        raise ConfigError(f"unknown option {', '.join(unknown)}", source="command line")
    env = {var: value for var, value in environ.items() if var.startswith("CALLQ_") and value.strip()}
    base = Path.cwd() if cwd is None else cwd
    path, file = _locate(flags.get("config_path", config_path), env, base)
    top = _Table(_read_toml(path, file) if path is not None else {}, file)
    top.check_keys(_TOP_KEYS)
    retention = _env_or_toml(env, "CALLQ_OUTCOME_RETENTION", top, "outcome_retention")
    maxlen = _env_or_toml(env, "CALLQ_OUTCOMES_MAXLEN", top, "outcomes_maxlen")
    replicas = _env_or_toml(env, "CALLQ_START_REPLICAS", top, "start_replicas")
    replicas_timeout = _env_or_toml(env, "CALLQ_START_REPLICAS_TIMEOUT", top, "start_replicas_timeout")
    defaults = Settings()
    portals = _portals(top, env)
    plain_tokens, named_tokens = read_api_tokens(env, top, portals)
    return Settings(
        redis_url=_redis_url(*_choose(flags, env, top, "redis_url", "CALLQ_REDIS_URL", defaults.redis_url)),
        key_prefix=_key_prefix(
            *_choose(flags, env, top, "key_prefix", "CALLQ_KEY_PREFIX", defaults.key_prefix)
        ),
        config_path=path,
        api_tokens=plain_tokens,
        named_tokens=named_tokens,
        portals=MappingProxyType(portals),
        outcome_retention_s=retention.number(
            "outcome_retention", defaults.outcome_retention_s, positive=True
        ),
        outcomes_maxlen=maxlen.integer("outcomes_maxlen", defaults.outcomes_maxlen, at_least=1),
        start_replicas=replicas.integer("start_replicas", defaults.start_replicas, at_least=0),
        start_replicas_timeout_s=replicas_timeout.number(
            "start_replicas_timeout", defaults.start_replicas_timeout_s, positive=True
        ),
    )
