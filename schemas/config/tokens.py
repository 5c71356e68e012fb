"""Bearer tokens of `callq serve`: the plain `api_tokens` list and named, scoped `[api_tokens.NAME]` tables.

```toml
api_tokens = ["…"]                 # full access: every portal, read and write (or CALLQ_API_TOKENS)

# or, instead of the list, named tokens with a scope:
[api_tokens.shop]
portals = ["acme"]                 # or "*" for every portal
access = "write"                   # "read": GET only; "write": POST, DELETE and GET
token = "…"                        # or CALLQ_API_TOKEN_SHOP, which keeps it out of the file
```

A TOML key is either a list or a table, so one file uses one form; `CALLQ_API_TOKENS` replaces the
file's list and adds to its named tokens. Errors name the table and key, never a token.
"""

from __future__ import annotations

import re
from collections.abc import Collection, Mapping
from typing import cast

from schemas.config.settings import ApiToken, ConfigError, TokenAccess, check_api_tokens
from schemas.config.toml import _show, _Table

ENV_TOKENS = "CALLQ_API_TOKENS"
ENV_TOKEN_PREFIX = "CALLQ_API_TOKEN_"
_TOKEN_KEYS = frozenset({"token", "portals", "access"})
_TOKEN_NAME = re.compile(r"[a-z0-9_-]+")
_ACCESS: tuple[TokenAccess, ...] = ("read", "write")


def _env_name(name: str) -> str:
    return name.upper().replace("-", "_")


def read_api_tokens(
    env: Mapping[str, str], top: _Table, portals: Collection[str]
) -> tuple[tuple[str, ...], tuple[ApiToken, ...]]:
    """The plain tokens (full access) and the named tokens of the configuration.

    Args:
        env: the `CALLQ_*` variables.
        top: the TOML file's top table.
        portals: the configured portal names (a token's `portals` must name some of them).

    Returns:
        (plain tokens, named tokens).

    Raises:
        ConfigError: naming the file or variable and the key; never a token.
    """
    value = top.data.get("api_tokens")
    tables: Mapping[str, object] = {}
    plain: tuple[str, ...] = ()
    if isinstance(value, dict):
        tables = value
    elif value is not None:
        plain = _plain_list(top, value)
    if ENV_TOKENS in env:
        plain = tuple(token.strip() for token in env[ENV_TOKENS].split(",") if token.strip())
        check_api_tokens(plain, source=ENV_TOKENS, key=None)
    else:
        check_api_tokens(plain, source=top.file, key="api_tokens")
    secrets = _env_secrets(env, tables)
    named = tuple(_named(top, name, secrets.get(name), portals) for name in tables)
    _check_distinct(plain, named, file=top.file, plain_from=ENV_TOKENS if ENV_TOKENS in env else "api_tokens")
    return plain, named


def _plain_list(top: _Table, value: object) -> tuple[str, ...]:
    if not isinstance(value, list) or not all(isinstance(token, str) and token.strip() for token in value):
        # never echo a token
        top.fail("api_tokens", "must be a list of non-empty strings, or [api_tokens.NAME] tables")
    return tuple(token.strip() for token in cast(list[str], value))


def _env_secrets(env: Mapping[str, str], tables: Mapping[str, object]) -> dict[str, tuple[str, str]]:
    """Token name -> (secret, variable) from `CALLQ_API_TOKEN_<NAME>`; each must name a table."""
    by_env_name: dict[str, list[str]] = {}
    for name in tables:
        by_env_name.setdefault(_env_name(name), []).append(name)
    found: dict[str, tuple[str, str]] = {}
    for var, secret in sorted(env.items()):
        if not var.startswith(ENV_TOKEN_PREFIX):
            continue
        matches = by_env_name.get(var[len(ENV_TOKEN_PREFIX) :], [])
        if len(matches) > 1:
            raise ConfigError(f"matches tokens {', '.join(matches)}; rename one of them", source=var)
        if not matches:
            raise ConfigError(
                "names no [api_tokens.NAME] table: a token's portals and access are set in the file",
                source=var,
            )
        found[matches[0]] = (secret.strip(), var)
    return found


def _named(top: _Table, name: str, secret: tuple[str, str] | None, portals: Collection[str]) -> ApiToken:
    tokens = top.table("api_tokens")
    assert tokens is not None  # the caller found the tables
    if not _TOKEN_NAME.fullmatch(name):
        tokens.fail(name, "token names must match [a-z0-9_-]+")
    table = tokens.table(name) or tokens.fail(name, "must be a table")
    table.check_keys(_TOKEN_KEYS)
    token = secret[0] if secret else table.string("token", secret=True)
    if not token:
        table.fail("token", f"is required (or set {ENV_TOKEN_PREFIX}{_env_name(name)})")
    if secret:
        check_api_tokens([token], source=secret[1], key=None)
    else:
        check_api_tokens([token], source=top.file, key=f"api_tokens.{name}.token")
    access = table.data.get("access")
    if access not in _ACCESS:
        table.fail("access", f'must be "read" or "write", got {_show(access)}')
    return ApiToken(
        name=name,
        token=token,
        portals=_scope(table, portals),
        access=access,
    )


def _scope(table: _Table, portals: Collection[str]) -> frozenset[str] | None:
    value = table.data.get("portals")
    if value == "*":
        return None
    if not isinstance(value, list) or not value:
        table.fail("portals", f'must be "*" (every portal) or a list of portal names, got {_show(value)}')
    for index, item in enumerate(value):
        if not isinstance(item, str) or item not in portals:
            configured = ", ".join(sorted(portals)) or "none"
            table.fail(
                f"portals[{index}]", f"must name a configured portal ({configured}), got {_show(item)}"
            )
    return frozenset(value)


def _check_distinct(
    plain: tuple[str, ...], named: tuple[ApiToken, ...], *, file: str, plain_from: str
) -> None:
    """Two scopes for one token would make which one applies a guess."""
    seen: dict[str, str] = dict.fromkeys(plain, plain_from)
    for token in named:
        where = f"api_tokens.{token.name}"
        if token.token in seen:
            detail = f"is the same token as {seen[token.token]}; each token must be distinct"
            raise ConfigError(detail, source=file, key=where)
        seen[token.token] = where
