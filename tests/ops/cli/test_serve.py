"""What ``callq serve`` refuses before it starts (:func:`ops.cli.serve._checked`). No Redis, no server."""

from __future__ import annotations

import argparse

import pytest

from ops.cli.serve import _checked, add_serve_arguments
from schemas.config import ApiToken, ConfigError
from tests.support.helpers import make_settings

TOKEN = "scoped-token-0123456789"


def serve_args(*argv: str) -> argparse.Namespace:
    """``callq serve`` arguments as the command line gives them."""
    parser = argparse.ArgumentParser()
    add_serve_arguments(parser)
    return parser.parse_args(list(argv))


def test_only_scoped_tokens_are_enough_to_start() -> None:
    """A configuration whose only tokens are named, scoped ones ([api_tokens.NAME]) starts: the check
    asks the one list of usable bearer tokens, not the plain api_tokens list."""
    scoped = ApiToken(name="shop", token=TOKEN, portals=frozenset({"default"}), access="read")
    settings = make_settings("redis://127.0.0.1:1/0", "p", named_tokens=(scoped,))
    assert settings.api_tokens == () and settings.bearer_tokens()
    _checked(serve_args(), settings)


def test_no_token_at_all_is_refused_unless_no_auth() -> None:
    """No token of any kind: refused, naming --no-auth; with --no-auth on loopback it starts."""
    settings = make_settings("redis://127.0.0.1:1/0", "p")
    with pytest.raises(ConfigError, match="--no-auth"):
        _checked(serve_args(), settings)
    _checked(serve_args("--no-auth"), settings)
