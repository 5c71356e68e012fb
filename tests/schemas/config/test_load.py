"""Tests for schemas.config: precedence, env shortcuts, validation messages and secret hygiene."""

from __future__ import annotations

import dataclasses
from datetime import date, datetime
from pathlib import Path
from zoneinfo import ZoneInfo

import pytest

from schemas.config import (
    DEFAULT_TOKEN_URL,
    ConfigError,
    LineConfig,
    OAuthConfig,
    PortalConfig,
    Settings,
    UnknownPortalError,
    load_settings,
    redact_webhook_url,
)
from schemas.policy.calendar import DEFAULT_HOURS, next_open

SECRET = "s3cr3t0kenvalue"
WEBHOOK = f"https://acme.bitrix24.ru/rest/1/{SECRET}/"
ACME_NO_ZONE = f'[portals.acme]\nwebhook_url = "{WEBHOOK}"\n'
ACME = ACME_NO_ZONE + 'timezone = "UTC"\n'
MSK = ZoneInfo("Europe/Moscow")

# The example of contract section 2, with a real-looking webhook URL.
CONTRACT_EXAMPLE = f"""
api_tokens = ["token-one-abcdefgh", "token-two-defghijk"]  # bearer tokens accepted by `callq serve`

[portals.acme]                       # a portal's name: [a-z0-9_-]+
webhook_url = "{WEBHOOK}"
timezone = "Europe/Moscow"           # IANA name
default_region = "RU"                # for numbers written without +country code
rate = 2.0                           # leaky bucket: requests per second, all workers together
burst = 50                           # leaky bucket size
holidays = "RU"                      # optional: country code for the `holidays` package
closed_dates = ["2026-12-31"]        # optional: extra closed days
max_attempts = 5                     # tries before a transient failure becomes dead
dedupe_window = 600                  # seconds after success in which the same line+number is a duplicate
default_deadline = 86400             # seconds a job stays callable, counted from its first open moment
retry_unknown = false                # true: re-send an attempt whose result is unknown (may ring twice)

[portals.acme.hours]                 # business hours in the portal's time zone; a day left out is closed
mon = "09:00-18:00"
tue = "09:00-13:00,14:00-18:00"
sat = ""                             # closed
# "00:00-24:00" is a whole day

[portals.acme.lines.reg1332]         # optional per-line overrides
hours = {{ mon = "10:00-16:00" }}      # replaces the portal's hours for this line
min_interval = 20                    # seconds between two callbacks started on this line
text_to_pronounce = "Callback request from the website, connecting you."
voice = "ruinternalfemale"
"""


def load(
    tmp_path: Path, toml: str | None = None, env: dict[str, str] | None = None, **overrides: object
) -> Settings:
    """Write `toml` as ./callq.toml (if given) and load settings with `env` and command-line overrides."""
    if toml is not None:
        (tmp_path / "callq.toml").write_text(toml, encoding="utf-8")
    return load_settings(env or {}, overrides=overrides, cwd=tmp_path)


def load_error(tmp_path: Path, toml: str | None = None, env: dict[str, str] | None = None) -> str:
    """The message of the ConfigError that loading raises."""
    with pytest.raises(ConfigError) as info:
        load(tmp_path, toml, env)
    return str(info.value)


def test_contract_example_loads(tmp_path: Path) -> None:
    """The TOML example of contract section 2 loads into the documented values."""
    settings = load(tmp_path, CONTRACT_EXAMPLE)
    acme = settings.portal("acme")
    assert settings.config_path == tmp_path / "callq.toml"
    assert settings.api_tokens == ("token-one-abcdefgh", "token-two-defghijk")
    assert (acme.webhook_url, acme.oauth, acme.timezone, acme.default_region) == (WEBHOOK, None, MSK, "RU")
    assert (acme.rate, acme.burst, acme.holidays, acme.closed_dates) == (
        2.0,
        50,
        "RU",
        frozenset({date(2026, 12, 31)}),
    )
    assert (acme.max_attempts, acme.dedupe_window_s, acme.default_deadline_s, acme.retry_unknown) == (
        5,
        600,
        86400,
        False,
    )
    assert dict(acme.hours) == {0: ((540, 1080),), 1: ((540, 780), (840, 1080))}
    assert acme.line("reg1332") == LineConfig(
        line_id="reg1332",
        hours=acme.lines["reg1332"].hours,
        min_interval_s=20,
        text_to_pronounce="Callback request from the website, connecting you.",
        voice="ruinternalfemale",
    )
    assert dict(acme.lines["reg1332"].hours or {}) == {0: ((600, 960),)}


def test_defaults_without_file_or_env(tmp_path: Path) -> None:
    """With no file and no variables every setting has its built-in default and there are no portals."""
    settings = load(tmp_path)
    assert settings == Settings()
    assert (settings.redis_url, settings.key_prefix, settings.config_path) == (
        "redis://localhost:6379/0",
        "callq",
        None,
    )
    assert (settings.outcome_retention_s, settings.outcomes_maxlen) == (7 * 86400, 1_000_000)


def test_portal_defaults(tmp_path: Path) -> None:
    """A portal that gives only its webhook gets the documented defaults."""
    acme = load(tmp_path, ACME).portal("acme")
    assert acme == PortalConfig(name="acme", webhook_url=WEBHOOK, timezone=ZoneInfo("UTC"))
    assert (acme.timezone, acme.rate, acme.burst, acme.max_attempts) == (ZoneInfo("UTC"), 2.0, 50, 5)
    assert (acme.dedupe_window_s, acme.default_deadline_s, acme.retry_unknown) == (600, 86400, False)
    assert acme.hours == DEFAULT_HOURS and dict(acme.lines) == {}


@pytest.mark.parametrize(
    ("key", "var"), [("redis_url", "CALLQ_REDIS_URL"), ("key_prefix", "CALLQ_KEY_PREFIX")]
)
@pytest.mark.parametrize(
    ("flag", "env", "toml", "expected"),
    [
        (None, None, None, "default"),
        (None, None, "toml", "toml"),
        (None, "env", "toml", "env"),
        (None, "env", None, "env"),
        ("flag", "env", "toml", "flag"),
        ("flag", None, "toml", "flag"),
        ("flag", None, None, "flag"),
    ],
)
def test_precedence(
    tmp_path: Path, key: str, var: str, flag: str | None, env: str | None, toml: str | None, expected: str
) -> None:
    """A command-line flag beats the environment, which beats the file, which beats the default."""
    values = {
        "redis_url": {
            "flag": "redis://flag:6379/1",
            "env": "redis://env:6379/2",
            "toml": "redis://toml:6379/3",
            "default": "redis://localhost:6379/0",
        },
        "key_prefix": {"flag": "from-flag", "env": "from-env", "toml": "from-toml", "default": "callq"},
    }[key]
    settings = load(
        tmp_path,
        f'{key} = "{values["toml"]}"\n' if toml else "",
        {var: values["env"]} if env else {},
        **({key: values["flag"]} if flag else {}),
    )
    assert getattr(settings, key) == values[expected]


def test_empty_variables_and_none_flags_count_as_unset(tmp_path: Path) -> None:
    """An empty CALLQ_* variable or a flag left at None does not hide the file's value."""
    settings = load(tmp_path, 'key_prefix = "filed"\n', {"CALLQ_KEY_PREFIX": ""}, key_prefix=None)
    assert settings.key_prefix == "filed"


def test_only_callq_variables_are_read(tmp_path: Path) -> None:
    """Variables without the CALLQ_ prefix are ignored."""
    assert load(tmp_path, env={"REDIS_URL": "redis://other:1/0", "WEBHOOK_URL": WEBHOOK}) == Settings()


@pytest.mark.parametrize(
    ("env", "kwarg", "flag", "read"),
    [
        pytest.param({}, None, None, "callq.toml", id="cwd-default"),
        pytest.param({"CALLQ_CONFIG": "conf/env.toml"}, None, None, "conf/env.toml", id="env"),
        pytest.param(
            {"CALLQ_CONFIG": "conf/env.toml"}, "conf/kwarg.toml", None, "conf/kwarg.toml", id="kwarg"
        ),
        pytest.param({"CALLQ_CONFIG": "conf/env.toml"}, None, "conf/flag.toml", "conf/flag.toml", id="flag"),
    ],
)
def test_config_file_location(
    tmp_path: Path, env: dict[str, str], kwarg: str | None, flag: str | None, read: str
) -> None:
    """The file comes from the flag, else CALLQ_CONFIG, else ./callq.toml, relative to the cwd."""
    (tmp_path / "conf").mkdir()
    for name in ("callq.toml", "conf/env.toml", "conf/kwarg.toml", "conf/flag.toml"):
        (tmp_path / name).write_text(f'key_prefix = "{name.replace("/", "-")}"\n', encoding="utf-8")
    settings = load_settings(
        env,
        config_path=None if kwarg is None else Path(kwarg),
        overrides={"config_path": flag},
        cwd=tmp_path,
    )
    assert settings.key_prefix == read.replace("/", "-")
    assert settings.config_path == tmp_path / read


@pytest.mark.parametrize(
    ("env", "overrides", "message"),
    [
        ({"CALLQ_CONFIG": "missing.toml"}, {}, "CALLQ_CONFIG: config file missing.toml does not exist"),
        ({}, {"config_path": "gone.toml"}, "command line: config file gone.toml does not exist"),
        ({"CALLQ_CONFIG": "."}, {}, "CALLQ_CONFIG: config file . is not a file"),
        ({}, {"redis": "x"}, "command line: unknown option redis"),
    ],
)
def test_config_file_that_is_named_must_exist(
    tmp_path: Path, env: dict[str, str], overrides: dict[str, object], message: str
) -> None:
    """A file named by flag or CALLQ_CONFIG that does not exist is an error, not an empty config."""
    with pytest.raises(ConfigError, match=f"^{message}$"):
        load_settings(env, overrides=overrides, cwd=tmp_path)


def test_errors_name_the_file_that_was_read(tmp_path: Path) -> None:
    """Messages name the file as it was given, e.g. a path from CALLQ_CONFIG."""
    (tmp_path / "prod.toml").write_text(ACME + 'rate = "fast"\n', encoding="utf-8")
    with pytest.raises(ConfigError) as info:
        load_settings({"CALLQ_CONFIG": "prod.toml"}, cwd=tmp_path)
    assert str(info.value) == 'prod.toml: portals.acme.rate: must be a positive number, got "fast"'
    assert (info.value.source, info.value.key) == ("prod.toml", "portals.acme.rate")


@pytest.mark.parametrize(
    ("toml", "env", "expected"),
    [
        pytest.param(None, {"CALLQ_WEBHOOK_URL": WEBHOOK}, {"default": WEBHOOK}, id="creates-default"),
        pytest.param(None, {"CALLQ_WEBHOOK_URL": WEBHOOK.rstrip("/")}, {"default": WEBHOOK}, id="adds-slash"),
        pytest.param(
            '[portals.default]\ntimezone = "Europe/Moscow"\n',
            {"CALLQ_WEBHOOK_URL": WEBHOOK},
            {"default": WEBHOOK},
            id="fills-toml-portal",
        ),
        pytest.param(
            '[portals.default]\nwebhook_url = "https://old.bitrix24.ru/rest/1/old/"\n',
            {"CALLQ_WEBHOOK_URL": WEBHOOK},
            {"default": WEBHOOK},
            id="env-wins",
        ),
        pytest.param(
            None,
            {
                "CALLQ_WEBHOOK_URL": "https://a.bitrix24.ru/rest/1/a/",
                "CALLQ_PORTAL_DEFAULT_WEBHOOK_URL": WEBHOOK,
            },
            {"default": WEBHOOK},
            id="specific-wins",
        ),
        pytest.param(
            ACME,
            {"CALLQ_WEBHOOK_URL": "https://b.bitrix24.ru/rest/2/b/"},
            {"acme": WEBHOOK, "default": "https://b.bitrix24.ru/rest/2/b/"},
            id="beside-toml-portal",
        ),
        pytest.param(
            ACME,
            {"CALLQ_PORTAL_ACME_WEBHOOK_URL": "https://acme.bitrix24.ru/rest/9/new/"},
            {"acme": "https://acme.bitrix24.ru/rest/9/new/"},
            id="portal-env-wins",
        ),
        pytest.param(
            '[portals.my-portal]\ntimezone = "Europe/Moscow"\n',
            {"CALLQ_PORTAL_MY_PORTAL_WEBHOOK_URL": WEBHOOK},
            {"my-portal": WEBHOOK},
            id="dash-as-underscore",
        ),
        pytest.param(
            '[portals.beta]\ntimezone = "UTC"\n',
            {"CALLQ_PORTAL_BETA_WEBHOOK_URL": "http://127.0.0.1:8080/rest/1/sandbox/"},
            {"beta": "http://127.0.0.1:8080/rest/1/sandbox/"},
            id="env-fills-portal",
        ),
    ],
)
def test_webhook_from_environment(
    tmp_path: Path, toml: str | None, env: dict[str, str], expected: dict[str, str]
) -> None:
    """CALLQ_WEBHOOK_URL and CALLQ_PORTAL_<NAME>_WEBHOOK_URL supply or override webhook secrets."""
    env = {"CALLQ_TIMEZONE": "UTC", **env} if "CALLQ_WEBHOOK_URL" in env else env
    settings = load(tmp_path, toml, env)
    assert {name: portal.webhook_url for name, portal in settings.portals.items()} == expected


def test_webhook_env_keeps_the_files_other_settings(tmp_path: Path) -> None:
    """A webhook from the environment leaves the portal's other TOML settings in place."""
    settings = load(
        tmp_path, '[portals.default]\ntimezone = "Europe/Moscow"\n', {"CALLQ_WEBHOOK_URL": WEBHOOK}
    )
    assert settings.portal(None).timezone == MSK


OAUTH_TABLE = """
[portals.acme.oauth]
client_id = "local.abc"
domain = "acme.bitrix24.ru"
"""
OAUTH = '[portals.acme]\ntimezone = "UTC"\n' + OAUTH_TABLE


def test_oauth_from_file_and_environment(tmp_path: Path) -> None:
    """An oauth table may take its client secret and refresh token from CALLQ_PORTAL_<NAME>_OAUTH_*."""
    env = {
        "CALLQ_PORTAL_ACME_OAUTH_CLIENT_SECRET": "csecret",
        "CALLQ_PORTAL_ACME_OAUTH_REFRESH_TOKEN": "rtoken",
    }
    acme = load(tmp_path, OAUTH, env).portal("acme")
    assert acme.webhook_url is None
    assert acme.oauth == OAuthConfig(
        client_id="local.abc",
        client_secret="csecret",
        refresh_token="rtoken",
        domain="acme.bitrix24.ru",
        token_url=DEFAULT_TOKEN_URL,
    )
    assert "csecret" not in repr(acme) and "rtoken" not in repr(acme)


def test_oauth_environment_overrides_file(tmp_path: Path) -> None:
    """A secret in the environment wins over the same secret in the file."""
    toml = OAUTH + 'client_secret = "old"\nrefresh_token = "old-rt"\ntoken_url = "http://localhost:9/token"\n'
    oauth = load(tmp_path, toml, {"CALLQ_PORTAL_ACME_OAUTH_CLIENT_SECRET": "new"}).portal("acme").oauth
    assert oauth is not None
    assert (oauth.client_secret, oauth.refresh_token, oauth.token_url) == (
        "new",
        "old-rt",
        "http://localhost:9/token",
    )


P = "callq.toml: portals.acme"


@pytest.mark.parametrize(
    ("toml", "message"),
    [
        (ACME + 'rate = "fast"', f'{P}.rate: must be a positive number, got "fast"'),
        (ACME + "rate = 0", f"{P}.rate: must be a positive number, got 0"),
        (ACME + "rate = nan", f"{P}.rate: must be a positive number, got nan"),
        (ACME + "burst = 0", f"{P}.burst: must be an integer >= 1, got 0"),
        (ACME + "burst = 1.5", f"{P}.burst: must be an integer >= 1, got 1.5"),
        (ACME + "burst = true", f"{P}.burst: must be an integer >= 1, got true"),
        (ACME + "max_attempts = 0", f"{P}.max_attempts: must be an integer >= 1, got 0"),
        (ACME + "dedupe_window = -1", f"{P}.dedupe_window: must be a number >= 0, got -1"),
        (ACME + "default_deadline = 0", f"{P}.default_deadline: must be a positive number, got 0"),
        (ACME + 'retry_unknown = "yes"', f'{P}.retry_unknown: must be true or false, got "yes"'),
        (
            ACME_NO_ZONE + 'timezone = "Mars/Base"',
            f'{P}.timezone: must be an IANA time zone name like "Europe/Moscow"',
        ),
        (
            ACME_NO_ZONE + 'timezone = "Europe"',
            f'{P}.timezone: must be an IANA time zone name like "Europe/Moscow"',
        ),
        (
            ACME + 'default_region = "XX"',
            f'{P}.default_region: must be an ISO 3166 alpha-2 region code like "RU"',
        ),
        (ACME + 'holidays = "XX"', f"{P}.holidays: must be a country code known to the holidays package"),
        (ACME + 'holidays = "US-ZZ"', f'{P}.holidays: "ZZ" is not a subdivision of US'),
        (ACME + 'closed_dates = "2026-12-31"', f"{P}.closed_dates: must be a list of ISO dates"),
        (
            ACME + 'closed_dates = ["31.12.2026"]',
            f'{P}.closed_dates[0]: must be an ISO date like "2026-12-31"',
        ),
        (
            ACME + 'closed_dates = ["2026-01-01", "2026-02-30"]',
            f'{P}.closed_dates[1]: must be an ISO date like "2026-12-31", got "2026-02-30"',
        ),
        (ACME + "closed_dates = [2026-12-31T10:00:00]", f"{P}.closed_dates[0]: must be an ISO date"),
        (ACME + "hours = 5", f"{P}.hours: must be a table, got an integer"),
        (ACME + '[portals.acme.hours]\ntue = "25:00-26:00"', f'{P}.hours.tue: bad time "25:00"'),
        (ACME + '[portals.acme.hours]\nmonday = "09:00-18:00"', f'{P}.hours: unknown day "monday"'),
        (
            ACME + "[portals.acme.lines.l1]\nmin_interval = -1",
            f"{P}.lines.l1.min_interval: must be a number >= 0, got -1",
        ),
        (
            ACME + '[portals.acme.lines.l1]\ntext_to_pronounce = ""',
            f"{P}.lines.l1.text_to_pronounce: must be a non-empty string",
        ),
        (
            ACME + f'[portals.acme.lines.l1]\ntext_to_pronounce = "{"a" * 2001}"',
            f"{P}.lines.l1.text_to_pronounce: must be 1..2000 characters, got 2001",
        ),
        (
            ACME + "[portals.acme.lines.l1]\nvoice = 5",
            f"{P}.lines.l1.voice: must be a non-empty string, got 5",
        ),
        (
            ACME + '[portals.acme.lines.l1]\nhours = { mon = "10-16" }',
            f'{P}.lines.l1.hours.mon: bad time "10"',
        ),
        (
            ACME + '[portals.acme.lines.l1]\nhourz = { mon = "10:00-16:00" }',
            f'{P}.lines.l1: unknown key "hourz"',
        ),
        (ACME + "[portals.acme.lines]\nl1 = 5", f"{P}.lines.l1: must be a table, got an integer"),
        (ACME + '[portals.acme.lines.""]\nvoice = "x"', f"{P}.lines: line names must be non-empty"),
        (ACME + "ratee = 3\nburts = 4", f'{P}: unknown keys "burts", "ratee" (allowed: burst,'),
        (ACME + 'redis_ur = "redis://x"', f'{P}: unknown key "redis_ur"'),
        ('redis_ur = "redis://x"\n' + ACME, 'callq.toml: unknown key "redis_ur" (allowed: api_tokens,'),
        (
            'key_prefix = "a{b}"',
            'callq.toml: key_prefix: must be non-empty, without whitespace or braces, got "a{b}"',
        ),
        ('key_prefix = ""', "callq.toml: key_prefix: must be non-empty"),
        (
            'redis_url = "http://cache:6379"',
            "callq.toml: redis_url: must be a redis://, rediss://, unix:// or redis+sentinel:// URL",
        ),
        (
            'redis_url = "redis"',
            'callq.toml: redis_url: must be a redis://, rediss://, unix:// or redis+sentinel:// URL, got "redis"',
        ),
        ("outcome_retention = 0", "callq.toml: outcome_retention: must be a positive number, got 0"),
        ("outcomes_maxlen = 0", "callq.toml: outcomes_maxlen: must be an integer >= 1, got 0"),
        ("portals = 5", "callq.toml: portals: must be a table, got an integer"),
        ("[portals]\nacme = 5", "callq.toml: portals.acme: must be a table, got an integer"),
        (
            '[portals.Acme]\nwebhook_url = "https://a.bitrix24.ru/rest/1/x/"',
            "callq.toml: portals.Acme: portal names must match",
        ),
        (
            '[portals.acme]\ntimezone = "UTC"',
            f"{P}: needs webhook_url (or CALLQ_PORTAL_ACME_WEBHOOK_URL) or an oauth table",
        ),
        (
            ACME + OAUTH_TABLE + 'client_secret = "c"\nrefresh_token = "r"',
            f"{P}: has both a webhook URL (webhook_url) and an oauth table",
        ),
        (ACME + '[portals.acme.oauth]\ncliend_id = "x"', f'{P}.oauth: unknown key "cliend_id"'),
        ('[portals.acme.oauth]\ndomain = "acme.bitrix24.ru"', f"{P}.oauth.client_id: is required"),
        (
            OAUTH + 'refresh_token = "r"',
            f"{P}.oauth.client_secret: is required (or set CALLQ_PORTAL_ACME_OAUTH_CLIENT_SECRET)",
        ),
        (
            OAUTH.replace("acme.bitrix24.ru", "https://acme.bitrix24.ru/")
            + 'client_secret = "c"\nrefresh_token = "r"',
            f'{P}.oauth.domain: must be a host name like "acme.bitrix24.ru"',
        ),
        (
            OAUTH + 'client_secret = "c"\nrefresh_token = "r"\ntoken_url = "http://oauth.example/t"',
            f"{P}.oauth.token_url: must use https",
        ),
        (
            OAUTH
            + 'client_secret = "c"\nrefresh_token = "r"\ntoken_url = "https://u:p@o.example:8443/t/?s=1#f"',
            f'{P}.oauth.token_url: must not have a query or fragment, got "https://o.example:8443/t/"',
        ),
        (
            OAUTH + 'client_secret = "c"\nrefresh_token = "r"\ntoken_url = "http://127.0.0.1.evil.example/t"',
            f"{P}.oauth.token_url: must use https (plain http is allowed only for loopback",
        ),
        (
            "[portals.acme]\nwebhook_url = 5",
            f"{P}.webhook_url: must be a webhook URL like https://acme.bitrix24.ru/rest/1/<code>/",
        ),
        (
            '[portals.acme]\nwebhook_url = "ftp://acme.bitrix24.ru/rest/1/x/"',
            f"{P}.webhook_url: must be an http(s) URL",
        ),
        (
            '[portals.acme]\nwebhook_url = "http://acme.bitrix24.ru/rest/1/x/"',
            f"{P}.webhook_url: must use https",
        ),
        (
            '[portals.acme]\nwebhook_url = "https://acme.bitrix24.ru:99999/rest/1/x/"',
            f"{P}.webhook_url: must be a valid URL",
        ),
        ('api_tokens = "abc"', "callq.toml: api_tokens: must be a list of non-empty strings"),
        ("[portals.acme\n", "callq.toml: invalid TOML: "),
    ],
)
def test_validation_errors_name_file_and_key(tmp_path: Path, toml: str, message: str) -> None:
    """Each invalid value raises one ConfigError whose message starts with the file and the key."""
    assert load_error(tmp_path, toml + "\n").startswith(message)


@pytest.mark.parametrize(
    ("env", "message"),
    [
        (
            {"CALLQ_KEY_PREFIX": "a b"},
            'CALLQ_KEY_PREFIX: must be non-empty, without whitespace or braces, got "a b"',
        ),
        (
            {"CALLQ_REDIS_URL": "localhost:6379"},
            "CALLQ_REDIS_URL: must be a redis://, rediss://, unix:// or redis+sentinel:// URL",
        ),
        (
            {"CALLQ_OUTCOME_RETENTION": "week"},
            'CALLQ_OUTCOME_RETENTION: must be a positive number, got "week"',
        ),
        ({"CALLQ_OUTCOMES_MAXLEN": "1.5"}, "CALLQ_OUTCOMES_MAXLEN: must be an integer >= 1, got 1.5"),
        ({"CALLQ_WEBHOOK_URL": "http://acme.bitrix24.ru/rest/1/x/"}, "CALLQ_WEBHOOK_URL: must use https"),
        ({"CALLQ_PORTAL__WEBHOOK_URL": WEBHOOK}, "CALLQ_PORTAL__WEBHOOK_URL: names no portal"),
        ({"CALLQ_PORTAL_X_OAUTH_REFRESH_TOKEN": "r"}, "CALLQ_PORTAL_X_OAUTH_REFRESH_TOKEN: portal x has no"),
    ],
)
def test_environment_errors_name_the_variable(tmp_path: Path, env: dict[str, str], message: str) -> None:
    """A bad value from the environment is reported under the variable's name."""
    assert load_error(tmp_path, None, env).startswith(message)


def test_environment_name_matching_two_portals_is_an_error(tmp_path: Path) -> None:
    """CALLQ_PORTAL_A_B_* is ambiguous when both portals a-b and a_b exist."""
    toml = f'[portals.a-b]\nwebhook_url = "{WEBHOOK}"\n[portals.a_b]\nwebhook_url = "{WEBHOOK}"\n'
    message = load_error(tmp_path, toml, {"CALLQ_PORTAL_A_B_WEBHOOK_URL": WEBHOOK})
    assert message == "CALLQ_PORTAL_A_B_WEBHOOK_URL: matches portals a-b, a_b; rename one of them"


@pytest.mark.parametrize(
    ("toml", "env"),
    [
        pytest.param(
            f'[portals.acme]\nwebhook_url = "http://acme.bitrix24.ru/rest/1/{SECRET}/"', {}, id="http"
        ),
        pytest.param(f'[portals.acme]\nwebhook_url = "{WEBHOOK}?x=1"', {}, id="query"),
        pytest.param(
            f'[portals.acme]\nwebhook_url = "https://acme.bitrix24.ru:0x/rest/1/{SECRET}/"', {}, id="port"
        ),
        pytest.param(
            None, {"CALLQ_WEBHOOK_URL": f"ftp://acme.bitrix24.ru/rest/1/{SECRET}/"}, id="env-scheme"
        ),
        pytest.param(ACME + OAUTH + f'client_secret = "{SECRET}"\nrefresh_token = "{SECRET}"', {}, id="both"),
        pytest.param(OAUTH + f'client_secret = "{SECRET}"', {}, id="oauth-missing"),
        pytest.param(OAUTH + f"client_secret = {{ value = '{SECRET}' }}", {}, id="oauth-type"),
        pytest.param(f'api_tokens = ["{SECRET}", ""]', {}, id="tokens"),
        pytest.param(f'api_tokens = ["{SECRET}", "{SECRET[:5]}"]', {}, id="short-token"),
        pytest.param(
            OAUTH + f'client_secret = "c"\nrefresh_token = "r"\ntoken_url = "https://o.example/t?s={SECRET}"',
            {},
            id="token-url-query",
        ),
        pytest.param(
            OAUTH + f'client_secret = "c"\nrefresh_token = "r"\ntoken_url = "http://o.example/t?s={SECRET}"',
            {},
            id="token-url-http-query",
        ),
        pytest.param(
            OAUTH + f'client_secret = "c"\nrefresh_token = "r"\ntoken_url = "http://u:{SECRET}@o.example/t"',
            {},
            id="token-url-userinfo",
        ),
        pytest.param(f'[portals]\nacme = "{WEBHOOK}"', {}, id="portal-as-string"),
        pytest.param(f'[portals.acme]\noauth = "{SECRET}"', {}, id="oauth-as-string"),
        pytest.param(f'redis_url = "http://:{SECRET}@cache:6379/0"', {}, id="redis-password"),
    ],
)
def test_secrets_never_appear_in_errors(tmp_path: Path, toml: str | None, env: dict[str, str]) -> None:
    """Error messages about webhooks, OAuth secrets, tokens and Redis URLs never contain the secret."""
    assert SECRET not in load_error(tmp_path, toml, env)


def test_secrets_never_appear_in_reprs(tmp_path: Path) -> None:
    """repr() of settings, portals and OAuth configs hides webhook codes, secrets, tokens and passwords."""
    toml = CONTRACT_EXAMPLE + '[portals.beta]\ntimezone = "UTC"\n[portals.beta.oauth]\nclient_id = "id"\n'
    toml += 'domain = "beta.bitrix24.ru"\n'
    toml += f'client_secret = "{SECRET}1"\nrefresh_token = "{SECRET}2"\n'
    env = {"CALLQ_API_TOKENS": f"{SECRET}3", "CALLQ_REDIS_URL": f"redis://user:{SECRET}4@cache:6379/0"}
    settings = load(tmp_path, toml, env)
    for text in (repr(settings), str(settings), repr(settings.portals), repr(settings.portal("beta").oauth)):
        assert SECRET not in text
    assert "redis://user:***@cache:6379/0" in repr(settings)


@pytest.mark.parametrize(
    ("url", "expected"),
    [
        (WEBHOOK, "https://acme.bitrix24.ru/rest/1/***/"),
        (WEBHOOK.rstrip("/"), "https://acme.bitrix24.ru/rest/1/***"),
        (
            WEBHOOK + "voximplant.callback.start.json",
            "https://acme.bitrix24.ru/rest/1/***/voximplant.callback.start.json",
        ),
        ("http://127.0.0.1:8080/rest/7/abc/", "http://127.0.0.1:8080/rest/7/***/"),
        (
            f"https://user:{SECRET}@acme.bitrix24.ru/rest/1/{SECRET}/?auth={SECRET}",
            "https://acme.bitrix24.ru/rest/1/***/?***",
        ),
        (f"https://acme.example/hooks/{SECRET}", "https://acme.example/***"),
        ("https://acme.example/", "https://acme.example/"),
        (SECRET, "***"),
        ("https://[::1/rest/1/x/", "***"),
    ],
)
def test_redact_webhook_url(url: str, expected: str) -> None:
    """Only the scheme, host, user id and method survive redaction of a webhook URL."""
    assert redact_webhook_url(url) == expected


def test_api_tokens_from_environment_replace_the_files(tmp_path: Path) -> None:
    """CALLQ_API_TOKENS is comma-separated, trimmed, and replaces the file's api_tokens."""
    file_token, a1, b2 = "from-file-0123456789", "a1-0123456789abcdef", "b2-0123456789abcdef"
    settings = load(tmp_path, f'api_tokens = ["{file_token}"]\n', {"CALLQ_API_TOKENS": f" {a1} , {b2},, "})
    assert settings.api_tokens == (a1, b2)
    assert load(tmp_path, f'api_tokens = ["{file_token}"]\n').api_tokens == (file_token,)


@pytest.mark.parametrize(
    ("toml", "env", "message"),
    [
        (
            'api_tokens = ["0123456789abcdef", "x"]',
            {},
            "callq.toml: api_tokens: every token must be at least 16 characters long (token 2 of 2 is shorter)",
        ),
        (
            None,
            {"CALLQ_API_TOKENS": "0123456789abcde"},
            "CALLQ_API_TOKENS: every token must be at least 16 characters long (the token is shorter)",
        ),
    ],
)
def test_short_api_tokens_are_refused(
    tmp_path: Path, toml: str | None, env: dict[str, str], message: str
) -> None:
    """A bearer token under 16 characters is a configuration error naming the key, never the token."""
    error = load_error(tmp_path, toml, env)
    assert error.startswith(message)
    assert "0123456789abcde" not in error and '"x"' not in error


@pytest.mark.parametrize(
    ("toml", "env", "expected"),
    [
        ("", {}, (7 * 86400, 1_000_000)),
        ("outcome_retention = 3600\noutcomes_maxlen = 500\n", {}, (3600, 500)),
        (
            "outcome_retention = 3600\noutcomes_maxlen = 500\n",
            {"CALLQ_OUTCOME_RETENTION": "60.5", "CALLQ_OUTCOMES_MAXLEN": "10"},
            (60.5, 10),
        ),
    ],
)
def test_outcome_retention_and_stream_length(
    tmp_path: Path, toml: str, env: dict[str, str], expected: tuple[float, int]
) -> None:
    """The two extensions follow the same precedence: environment over file over default."""
    settings = load(tmp_path, toml, env)
    assert (settings.outcome_retention_s, settings.outcomes_maxlen) == expected


@pytest.mark.parametrize(
    ("toml", "value"),
    [
        ('closed_dates = ["2026-12-31", 2027-01-02]', {date(2026, 12, 31), date(2027, 1, 2)}),
        ('holidays = "us-ca"', "US-CA"),
        ('default_region = "ru"', "RU"),
        ('webhook_url = "http://localhost:8080/rest/1/abc"', "http://localhost:8080/rest/1/abc/"),
        ('webhook_url = "http://[::1]:8080/rest/1/abc/"', "http://[::1]:8080/rest/1/abc/"),
        ('webhook_url = "http://127.1:8080/rest/1/abc/"', "http://127.1:8080/rest/1/abc/"),
        ('webhook_url = "http://127.0.0.2/rest/1/abc/"', "http://127.0.0.2/rest/1/abc/"),
        ('webhook_url = "http://sandbox.localhost/rest/1/abc/"', "http://sandbox.localhost/rest/1/abc/"),
    ],
)
def test_normalised_values(tmp_path: Path, toml: str, value: object) -> None:
    """TOML dates and strings, lower-case codes and missing slashes are normalised."""
    key = toml.partition(" = ")[0]
    portal = load(
        tmp_path,
        f'[portals.acme]\ntimezone = "UTC"\n{toml}\n'
        + ("" if key == "webhook_url" else f'webhook_url = "{WEBHOOK}"\n'),
    )
    attribute = {"closed_dates": "closed_dates", "holidays": "holidays", "default_region": "default_region"}
    assert getattr(portal.portal("acme"), attribute.get(key, key)) == value


def test_line_overrides_produce_the_lines_calendar(tmp_path: Path) -> None:
    """A line's hours replace the portal's; zone, holidays and closed dates still come from the portal."""
    acme = load(tmp_path, CONTRACT_EXAMPLE).portal("acme")
    line_cal, other_cal = acme.calendar_for("reg1332"), acme.calendar_for("reg9999")
    assert dict(line_cal.weekly) == {0: ((600, 960),)}
    assert other_cal.weekly == acme.hours
    for cal in (line_cal, other_cal):
        assert (cal.tz, cal.holiday_country, cal.closed_dates) == (MSK, "RU", frozenset({date(2026, 12, 31)}))
    monday_930 = datetime(2026, 11, 23, 9, 30, tzinfo=MSK)
    assert next_open(line_cal, monday_930) == datetime(2026, 11, 23, 10, 0, tzinfo=MSK)
    assert next_open(other_cal, monday_930) == monday_930
    assert acme.line("reg9999") == LineConfig("reg9999")


def test_portal_lookup(tmp_path: Path) -> None:
    """portal(None) picks the only portal; an unknown name or an unnamed choice among several raises."""
    one = load(tmp_path, ACME)
    assert one.portal(None).name == one.portal("acme").name == "acme"
    with pytest.raises(UnknownPortalError, match=r'^unknown portal "beta" \(configured: acme\)$'):
        one.portal("beta")
    two = load(tmp_path, ACME, {"CALLQ_WEBHOOK_URL": WEBHOOK, "CALLQ_TIMEZONE": "UTC"})
    with pytest.raises(
        UnknownPortalError, match=r"^several portals are configured \(acme, default\); name one$"
    ):
        two.portal(None)
    with pytest.raises(LookupError, match="no portal is configured"):
        Settings().portal(None)
    with pytest.raises(ConfigError, match="configured: none"):
        Settings().portal("acme")


def test_settings_are_frozen(tmp_path: Path) -> None:
    """Settings, portals and their mappings cannot be changed after loading."""
    settings = load(tmp_path, CONTRACT_EXAMPLE)
    with pytest.raises(dataclasses.FrozenInstanceError):
        settings.key_prefix = "other"  # type: ignore[misc]
    with pytest.raises(TypeError):
        settings.portals["x"] = settings.portal("acme")  # type: ignore[index]
    with pytest.raises(TypeError):
        settings.portal("acme").lines["x"] = LineConfig("x")  # type: ignore[index]


def test_portal_needs_exactly_one_credential() -> None:
    """A PortalConfig built by hand must have a webhook or an OAuth app, not both or neither."""
    with pytest.raises(ValueError, match="exactly one"):
        PortalConfig(name="acme", timezone=ZoneInfo("UTC"))


def test_start_replicas_is_read_from_the_file_and_the_environment(tmp_path: Path) -> None:
    """`start_replicas` and `start_replicas_timeout` in callq.toml; CALLQ_START_REPLICAS wins."""
    config = tmp_path / "callq.toml"
    config.write_text("start_replicas = 1\nstart_replicas_timeout = 0.5\n")
    settings = load_settings({}, config_path=config)
    assert (settings.start_replicas, settings.start_replicas_timeout_s) == (1, 0.5)
    assert load_settings({"CALLQ_START_REPLICAS": "2"}, config_path=config).start_replicas == 2
    assert load_settings({}, cwd=tmp_path / "nowhere").start_replicas == 0
