"""Bearer tokens of `callq serve` in the configuration: the plain list, named scoped tables, env secrets."""

from __future__ import annotations

from pathlib import Path

import pytest

from schemas.config import ApiToken, ConfigError, Settings, load_settings, token_fingerprint

SECRET = "t0ken-s3cr3t-value"
PORTALS = (
    '[portals.acme]\nwebhook_url = "https://acme.bitrix24.ru/rest/1/code/"\ntimezone = "UTC"\n'
    '[portals.beta]\nwebhook_url = "https://beta.bitrix24.ru/rest/1/code/"\ntimezone = "UTC"\n'
)


TOKEN_A = f'[api_tokens.a]\ntoken = "{SECRET}"\nportals = "*"\naccess = "read"\n'


def load(tmp_path: Path, toml: str, env: dict[str, str] | None = None) -> Settings:
    """Load `toml` (then two portals, acme and beta) as ./callq.toml with `env`."""
    (tmp_path / "callq.toml").write_text(toml + PORTALS, encoding="utf-8")
    return load_settings(env or {}, cwd=tmp_path)


def load_error(tmp_path: Path, toml: str, env: dict[str, str] | None = None) -> str:
    """The message of the ConfigError that loading raises."""
    with pytest.raises(ConfigError) as info:
        load(tmp_path, toml, env)
    return str(info.value)


def test_named_tokens_carry_their_scope(tmp_path: Path) -> None:
    """[api_tokens.NAME] tables load with their portals ("*" is every portal) and access."""
    settings = load(
        tmp_path,
        f"""
[api_tokens.shop]
token = "{SECRET}-1"
portals = ["acme"]
access = "write"
[api_tokens.crm]
token = "{SECRET}-2"
portals = "*"
access = "read"
""",
    )
    shop, crm = settings.named_tokens
    assert shop == ApiToken(name="shop", token=f"{SECRET}-1", portals=frozenset({"acme"}), access="write")
    assert crm == ApiToken(name="crm", token=f"{SECRET}-2", portals=None, access="read")
    assert (shop.may_see("acme"), shop.may_see("beta"), shop.may_write) == (True, False, True)
    assert (crm.may_see("beta"), crm.may_write) == (True, False)
    assert settings.api_tokens == ()
    assert settings.bearer_tokens() == (shop, crm)


def test_a_named_tokens_secret_can_come_from_the_environment(tmp_path: Path) -> None:
    """CALLQ_API_TOKEN_<NAME> gives (or replaces) a named token's secret; `-` in NAME is written `_`."""
    toml = '[api_tokens.shop-msk]\nportals = ["acme"]\naccess = "read"\n'
    settings = load(tmp_path, toml, {"CALLQ_API_TOKEN_SHOP_MSK": f" {SECRET} "})
    assert settings.named_tokens[0].token == SECRET
    replaced = load(tmp_path, toml + 'token = "from-file"\n', {"CALLQ_API_TOKEN_SHOP_MSK": SECRET})
    assert replaced.named_tokens[0].token == SECRET


def test_plain_tokens_have_full_access_and_a_fingerprint_for_a_name(tmp_path: Path) -> None:
    """The plain list (and CALLQ_API_TOKENS) still works: every portal, write; logged by a fingerprint."""
    settings = load(tmp_path, f'api_tokens = ["{SECRET}"]\n')
    (token,) = settings.bearer_tokens()
    assert (token.token, token.portals, token.access) == (SECRET, None, "write")
    assert token.name == token_fingerprint(SECRET)
    assert token.name.startswith("fp:") and len(token.name) == 11 and SECRET not in token.name
    assert token_fingerprint(SECRET) != token_fingerprint(SECRET + "x")


def test_callq_api_tokens_adds_to_the_named_tokens(tmp_path: Path) -> None:
    """With named tables in the file, CALLQ_API_TOKENS adds full-access tokens beside them."""
    toml = f'[api_tokens.shop]\ntoken = "{SECRET}"\nportals = ["acme"]\naccess = "write"\n'
    first, second = "a1-0123456789abcdef", "b2-0123456789abcdef"
    settings = load(tmp_path, toml, {"CALLQ_API_TOKENS": f"{first},{second}"})
    assert [t.name for t in settings.bearer_tokens()] == [
        token_fingerprint(first),
        token_fingerprint(second),
        "shop",
    ]


@pytest.mark.parametrize(
    ("toml", "env", "message"),
    [
        (
            '[api_tokens.shop]\nportals = ["acme"]\naccess = "read"\n',
            {},
            "callq.toml: api_tokens.shop.token: is required (or set CALLQ_API_TOKEN_SHOP)",
        ),
        (
            f'[api_tokens.shop]\ntoken = "{SECRET}"\naccess = "read"\n',
            {},
            'callq.toml: api_tokens.shop.portals: must be "*" (every portal) or a list of portal names',
        ),
        (
            f'[api_tokens.shop]\ntoken = "{SECRET}"\nportals = []\naccess = "read"\n',
            {},
            "callq.toml: api_tokens.shop.portals: must be",
        ),
        (
            f'[api_tokens.shop]\ntoken = "{SECRET}"\nportals = ["acme", "gamma"]\naccess = "read"\n',
            {},
            'callq.toml: api_tokens.shop.portals[1]: must name a configured portal (acme, beta), got "gamma"',
        ),
        (
            f'[api_tokens.shop]\ntoken = "{SECRET}"\nportals = "*"\n',
            {},
            'callq.toml: api_tokens.shop.access: must be "read" or "write", got None',
        ),
        (
            f'[api_tokens.shop]\ntoken = "{SECRET}"\nportals = "*"\naccess = "admin"\n',
            {},
            'callq.toml: api_tokens.shop.access: must be "read" or "write", got "admin"',
        ),
        (
            f'[api_tokens.shop]\ntoken = "{SECRET}"\nportals = "*"\naccess = "read"\nscope = 1\n',
            {},
            'callq.toml: api_tokens.shop: unknown key "scope"',
        ),
        (
            f'[api_tokens.Shop]\ntoken = "{SECRET}"\nportals = "*"\naccess = "read"\n',
            {},
            "callq.toml: api_tokens.Shop: token names must match [a-z0-9_-]+",
        ),
        (
            f'[api_tokens]\nshop = "{SECRET}"\n',
            {},
            "callq.toml: api_tokens.shop: must be a table, got a string",
        ),
        ("api_tokens = 5\n", {}, "callq.toml: api_tokens: must be a list of non-empty strings"),
        ("", {"CALLQ_API_TOKEN_SHOP": SECRET}, "CALLQ_API_TOKEN_SHOP: names no [api_tokens.NAME] table"),
        (
            TOKEN_A + f'[api_tokens.b]\ntoken = "{SECRET}"\nportals = ["acme"]\naccess = "write"\n',
            {},
            "callq.toml: api_tokens.b: is the same token as api_tokens.a",
        ),
        (
            f'[api_tokens.a]\ntoken = "{SECRET}"\nportals = "*"\naccess = "read"\n',
            {"CALLQ_API_TOKENS": SECRET},
            "callq.toml: api_tokens.a: is the same token as CALLQ_API_TOKENS",
        ),
    ],
)
def test_token_errors_name_the_key_never_the_token(
    tmp_path: Path, toml: str, env: dict[str, str], message: str
) -> None:
    """Each invalid token setting raises one error naming the file (or variable) and key, without the token."""
    error = load_error(tmp_path, toml, env)
    assert error.startswith(message), error
    assert SECRET not in error


def test_tokens_never_appear_in_reprs(tmp_path: Path) -> None:
    """repr() of the settings names the named tokens and their scope, never a token."""
    toml = f'[api_tokens.shop]\ntoken = "{SECRET}-1"\nportals = ["acme"]\naccess = "read"\n'
    settings = load(tmp_path, toml, {"CALLQ_API_TOKENS": f"{SECRET}-2"})
    text = repr(settings) + repr(settings.bearer_tokens())
    assert SECRET not in text
    assert "name='shop'" in text and "access='read'" in text
