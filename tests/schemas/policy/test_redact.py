"""Redaction of numbers and secrets in free text: what is masked, what is kept. Pure, no Redis."""

from __future__ import annotations

import unicodedata
from datetime import UTC, datetime
from zoneinfo import ZoneInfo

import pytest
from hypothesis import given
from hypothesis import strategies as st

from schemas.config import ApiToken, CallsConfig, PortalConfig, Settings
from schemas.policy.redact import (
    Redactor,
    admitted_spellings,
    known_secrets,
    mask_number,
    number_spellings,
    redact_text,
    redact_value,
)

NUMBER_FORMS = ("+79111234567", "79111234567", "89111234567", "9111234567")


@pytest.mark.parametrize(
    ("number", "masked"),
    [
        ("+79111234567", "+7911***4567"),
        ("+4930123456789", "+4930***6789"),
        ("12345678", "12***78"),
        ("", "***"),
    ],
)
def test_mask_number(number: str, masked: str) -> None:
    """A number keeps its head and tail; at least half of a short one is hidden."""
    assert mask_number(number) == masked


@pytest.mark.parametrize(
    ("text", "expected"),
    [
        # numbers, every spelling
        ("Phone number +79111234567 is not correct", "Phone number +7911***4567 is not correct"),
        ("+7 911 123-45-67", "+7911***4567"),
        ("+7 (911) 123-45-67, call back", "+7911***4567, call back"),
        ("8 (911) 123-45-67", "89***67"),
        ("911 123 45 67", "91***67"),
        ("911.123.45.67", "91***67"),
        ("79111234567", "79***67"),
        ("89111234567", "89***67"),
        ("9111234567", "91***67"),
        ("123-45-67", "1***7"),
        ('{"to_number":"+79111234567"}', '{"to_number":"+7911***4567"}'),
        ("callq:claim:default:reg1332:+79111234567", "callq:claim:default:reg1332:+7911***4567"),
        ("unknown field '79111234567'", "unknown field '79***67'"),
        ("(fields: 79111234567)", "(fields: 79***67)"),
        ("(79111234567, 8 (911) 123-45-67)", "(79***67, 89***67)"),
        ("номер79111234567", "номер79***67"),
        ("?to=%2B79111234567&x=1", "?to=+7911***4567&x=1"),
        ('"text":"Call me\\n79111234567\\u043079112223344"', '"text":"Call me\\n79***67\\u043079***44"'),
        ("79111234567 89111234567", "79111***4567"),
        ("+79111234567\n2026-11-30", "+7911***4567\n2026-11-30"),
        # issue 11, red team: more spellings of a full number
        ("8(911)1234567", "89***67"),
        ("a 8(911)123-45-67 b", "a 89***67 b"),
        ("+7_911_123_45_67", "+7911***4567"),
        ("+7/911/123/45/67", "+7911***4567"),
        ("7,911,123,45,67", "79***67"),
        ("+7 911 123,45,67", "+7911***4567"),
        ("+7\u2011911\u2011123\u20114567", "+7911***4567"),
        ("+7\u2013911\u2014123\u2212 45 67", "+7911***4567"),
        ("Номер 8\u00a0(911)\u2009123\u201045\u201167 неверный", "Номер 89***67 неверный"),
        ("\uff17\uff19\uff11\uff11\uff11\uff12\uff13\uff14\uff15\uff16\uff17", "79***67"),
        ("\uff0b\uff17 (\uff19\uff11\uff11) 123-45-67", "+7911***4567"),
        ("номер \u0667\u0669\u0661\u0661\u0661\u0662\u0663\u0664\u0665\u0666\u0667.", "номер 79***67."),
        ("+7%20911%201234567", "+7911***4567"),
        ("?to=%2B7%20911%20123%2045%2067&x=1", "?to=+7911***4567&x=1"),
        ("id79111234567", "id79***67"),
        ("client=abc79111234567;", "client=abc79***67;"),
        # secrets
        (
            "POST https://a.bitrix24.ru/rest/1/s3cr3tc0de/voximplant.callback.start.json?auth=tok123&x=1",
            "POST https://a.bitrix24.ru/rest/1/***/voximplant.callback.start.json?auth=***&x=1",
        ),
        (
            "grant_type=refresh_token&client_secret=cs3cret&refresh_token=rt0ken",
            "grant_type=refresh_token&client_secret=***&refresh_token=***",
        ),
        ('{"access_token": "at0ken", "expires": 3600}', '{"access_token": "***", "expires": 3600}'),
        ("{'refresh_token': 'rt0ken'}", "{'refresh_token': '***'}"),
        ("b'Authorization: Bearer s3cret\\x7f-token'", "b'Authorization: Bearer ***'"),
        ("authorization=Basic dXNlcjpwYXNz", "authorization=Basic ***"),
        ("sent Bearer abc.def-ghi to it", "sent Bearer *** to it"),
        (
            "no Redis answers at redis://:pa55word@cache:6379/0",
            "no Redis answers at redis://:***@cache:6379/0",
        ),
        ("rediss://callq:pa55word@cache:6380/1", "rediss://callq:***@cache:6380/1"),
        (
            "redis+sentinel://:pa55word@h1:26379,h2:26379/callq/0",
            "redis+sentinel://:***@h1:26379,h2:26379/callq/0",
        ),
    ],
)
def test_masked(text: str, expected: str) -> None:
    """Numbers in any spelling and secrets in any of their shapes are masked, the text around them kept."""
    assert redact_text(text) == expected


@pytest.mark.parametrize(
    "text",
    [
        "2026-11-30T05:55:29.123+00:00",
        "2026-11-30T05:55:29.123456Z",
        "2026-11-22 10:00:00 UTC (2026-11-22 13:00:00 MSK Europe/Moscow)",
        "next opening 2026-11-30T09:00:00+03:00, deadline 2026-12-01T09:00:00+03:00",
        "e3f09d60044a431d9f57",
        "1234567890abcdef1234",
        "s1764482129000-0",
        "intake 1764482129000-0 and 1764482129000-12",
        "callback.1bba8e19a7db2f637b2b9f68d5f676e9.1795287427",
        "http://127.0.0.1:8080/v1/callbacks",
        "Error 111 connecting to 10.0.0.12:6379. Connection refused.",
        "redis://cache:6379/0",
        "redis://callq@cache:6379/0",
        "took 1234.5 ms, 0.30000000000000004, 1764482129.123456",
        "HTTP 503 (QUERY_LIMIT_EXCEEDED), attempt 3 of 5, retry in 45 s",
        "body over 65536 bytes; 1048576 bytes; pid 4123456",
        "python3.11, aiohttp 3.14.5, reg1332, sip7",
        "tue = 09:00-13:00,14:00-18:00",
        "+00:00",
        "Could not find line reg1332",
        "12345678901234567890",
        "the bearer-less request",
        "callq serve needs at least one bearer token (CALLQ_API_TOKENS, or api_tokens in the TOML file)",
        "bearer authentication, Bearer tokens",
        "30.11.2026, 11/30/2026",
        "job abcdef12345678901234 and 9f1a2b3c4d1234567890",
        "2026 \u2014 the year; \uff11\uff12\uff13 items \u2013 ok",
        "\u0661\u0662\u0663-\u0664\u0665",
    ],
)
def test_kept(text: str) -> None:
    """Timestamps, ids, entry ids, addresses, decimals, versions and short counts are not mangled."""
    assert redact_text(text) == text


def test_known_secrets_masked_wherever_they_occur() -> None:
    """A configured secret is masked in any format, even where no shape gives it away."""
    redactor = Redactor(["s3cr3tc0de", "tok"])
    assert (
        redactor.text("ERROR: webhook s3cr3tc0de is wrong; tok stays")
        == "ERROR: webhook *** is wrong; tok stays"
    )


def test_known_numbers_in_every_spelling() -> None:
    """The job's own number is masked in each spelling, a short national number too."""
    spellings = number_spellings("+3725123456")  # an Estonian mobile: 7 national digits
    assert "5123456" in spellings
    out = redact_text("Number 5123456 (+3725123456, 3725123456) rejected", numbers=spellings)
    assert "5123456" not in out
    assert set(number_spellings("+79111234567")) == set(NUMBER_FORMS)
    assert number_spellings("8 (911) 123-45-67", "RU")[0] == "+79111234567"


@pytest.mark.parametrize(
    "text",
    [
        "7;911;123;45;67",
        "+7 - 911 - 123 - 45 - 67",
        "8*911*123*45*67",
        "%2B7%20911%201234567",
        "x9111234567x",
    ],
)
def test_the_job_number_in_any_separator_form(text: str) -> None:
    """The job's own number is masked whatever separates its digits, where no shape would find it."""
    out = redact_text(f"call {text} now", numbers=number_spellings("+79111234567"))
    assert "9111234567" not in "".join(filter(str.isdigit, out))


def test_kept_line_ids_are_shown_but_other_numbers_are_not() -> None:
    """A line id named by the company's number stays; the same shape elsewhere, or the job's number, is masked."""
    text = "default  74951234568  74951234568\nline sip74951234569 calls 74951234569 and 79111234567"
    out = redact_text(text, kept={"74951234568", "sip74951234569"}, numbers=number_spellings("+79111234567"))
    assert out == "default  74951234568  74951234568\nline sip74951234569 calls 74***69 and 79***67"
    assert redact_value({"74951234568": ["74951234568"]}, kept={"74951234568"}) == {
        "74951234568": ["74951234568"]
    }
    assert redact_text(
        "line 79111234567", kept={"79111234567"}, numbers=number_spellings("+79111234567")
    ) == ("line 79***67")


def test_redact_value_masks_nested_data_and_keys() -> None:
    """Dict keys, nested lists and large ints are masked; small scalars stay as they are."""
    data = {"fields": [{"+79111234567": "x"}], "lead": 79111234567, "count": 3, "ok": True, "x": None}
    assert redact_value(data) == {
        "fields": [{"+7911***4567": "x"}],
        "lead": "79***67",
        "count": 3,
        "ok": True,
        "x": None,
    }


def test_known_secrets_of_the_settings() -> None:
    """Webhook codes, event tokens, API tokens and the Redis password are what the configuration holds
    secret."""
    portal = PortalConfig(
        name="default",
        webhook_url="https://a.bitrix24.ru/rest/1/c0de77/",
        timezone=ZoneInfo("UTC"),
        calls=CallsConfig(event_token="ev3nt-t0ken"),
    )
    named = ApiToken(name="shop", token="sh0p-t0ken")
    settings = Settings(
        redis_url="redis://:pa55word@cache:6379/0",
        api_tokens=("api-t0ken",),
        named_tokens=(named,),
        portals={"default": portal},
    )
    assert set(known_secrets(settings)) == {"c0de77", "ev3nt-t0ken", "api-t0ken", "sh0p-t0ken", "pa55word"}
    sentinel = Settings(redis_url="redis+sentinel://:pw%40x@h1:26379/callq/0")
    assert set(known_secrets(sentinel)) == {"pw%40x", "pw@x"}


def test_redactor_repr_shows_no_secret() -> None:
    """A redactor can be printed without printing what it hides."""
    assert "s3cr3tc0de" not in repr(Redactor(["s3cr3tc0de"]))


def _spelled(nsn: str, form: str, sep: str) -> str:
    groups = [nsn[:3], nsn[3:6], nsn[6:8], nsn[8:]]
    return {
        "e164": f"+7{nsn}",
        "digits": f"7{nsn}",
        "national": f"8{nsn}",
        "nsn": nsn,
        "grouped": f"+7 ({groups[0]}) {sep.join(groups[1:])}",
        "national grouped": f"8 ({groups[0]}) {sep.join(groups[1:])}",
        "spaced": sep.join(["+7", *groups]),
    }[form]


WORDS = st.text(alphabet=st.sampled_from("abcxyzабв ,;:/\"'"), max_size=12)


@given(
    nsn=st.integers(9_000_000_000, 9_999_999_999).map(str),
    form=st.sampled_from(["e164", "digits", "national", "nsn", "grouped", "national grouped", "spaced"]),
    sep=st.sampled_from([" ", "-", ".", "\u00a0", "_", "/", "%20", "\u2011", "\u2013", "\u2009"]),
    digits=st.sampled_from(
        ["0123456789", "\uff10\uff11\uff12\uff13\uff14\uff15\uff16\uff17\uff18\uff19", "٠١٢٣٤٥٦٧٨٩"]
    ),
    wrap=st.sampled_from([" ", '"', "'", "(", ":", "=", "\n", "[", ",", "/"]),
    before=WORDS,
    after=WORDS,
)
def test_no_spelling_of_a_number_survives(
    nsn: str, form: str, sep: str, digits: str, wrap: str, before: str, after: str
) -> None:
    """A number in any spelling and script, set off by anything but a letter or digit, leaves no full spelling behind."""
    spelled = _spelled(nsn, form, sep).translate(str.maketrans("0123456789", digits))
    out = redact_text(f"{before}{wrap}{spelled}{wrap}{after}")
    shown = "".join(str(unicodedata.digit(c)) for c in out if c.isdigit())
    assert nsn not in shown


@given(
    moment=st.datetimes(
        min_value=datetime(2000, 1, 1), max_value=datetime(2100, 1, 1), timezones=st.just(UTC)
    ),
    entry_ms=st.integers(10**12, 10**13 - 1),
    sequence=st.integers(0, 99_999),
    job_id=st.binary(min_size=10, max_size=10).map(bytes.hex),
)
def test_timestamps_and_ids_survive(moment: datetime, entry_ms: int, sequence: int, job_id: str) -> None:
    """ISO timestamps, stream entry ids and hex job ids come out as they went in."""
    text = f"at {moment.isoformat()} ({moment:%Y-%m-%d %H:%M:%S}), job {job_id}, intake {entry_ms}-{sequence} s{entry_ms}-{sequence}"
    assert redact_text(text) == text


_FEW_DIGITS_TEXT = st.lists(
    st.one_of(
        st.sampled_from(["+", "-", " ", "(", ")", ".", "/", "_", "%20", "%2B", "=", "@", "://", ":", "x"]),
        st.sampled_from(["token", "Bearer ", "auth", "/rest/1/", "reg", "p", "s2u4seg", "abcdef"]),
        st.text(alphabet="0123456789", min_size=1, max_size=5),
    ),
    max_size=12,
).map("".join)


@given(text=_FEW_DIGITS_TEXT)
def test_a_text_with_few_digits_is_masked_as_by_the_full_scan(text: str) -> None:
    """A text of fewer than 6 digits skips the number scan and comes out as the full scan makes it."""
    if sum(c.isdigit() for c in text) >= 6:
        return
    numbers = number_spellings("+79111234567")
    redactor = Redactor(["s3cr3tcode"])
    assert redactor.text(text, numbers) == redactor._digits_masked(text, numbers, ())
    assert redactor.text(text) == redactor._digits_masked(text, (), ())


def test_short_values_skip_the_number_scan(monkeypatch: pytest.MonkeyPatch) -> None:
    """Job ids, portal and line names, counts: too few digits to be a number, no number pattern runs
    over them (they are most of the values a log line carries)."""
    from schemas.policy import redact

    def scan(*_args: object) -> str:
        raise AssertionError("the number patterns ran")

    monkeypatch.setattr(redact, "_sub_folded", scan)
    numbers = number_spellings("+79111234567")
    for text in ("s2u4segczmtas7epf", "p0", "reg1332", "attempt 3 of 5"):
        assert Redactor().text(text, numbers) == text
    assert Redactor().text("token=abc123", numbers) == "token=***"
    assert Redactor().key("attempt2", numbers) == "attempt2"


def _valid_e164_numbers() -> list[str]:
    """Valid numbers of every region, non-geographic entity and type: phonenumbers' examples and
    valid neighbours of each, in E.164 (as admission stores a job's number)."""
    import copy

    import phonenumbers

    examples = [
        phonenumbers.example_number_for_type(region, kind)
        for region in phonenumbers.SUPPORTED_REGIONS
        for kind in (
            phonenumbers.PhoneNumberType.FIXED_LINE,
            phonenumbers.PhoneNumberType.MOBILE,
            phonenumbers.PhoneNumberType.TOLL_FREE,
            phonenumbers.PhoneNumberType.PREMIUM_RATE,
            phonenumbers.PhoneNumberType.VOIP,
            phonenumbers.PhoneNumberType.UAN,
        )
    ] + [
        phonenumbers.example_number_for_non_geo_entity(code)
        for code in phonenumbers.COUNTRY_CODES_FOR_NON_GEO_REGIONS
    ]
    numbers = []
    for example in filter(None, examples):
        for step in range(0, 1000, 97):
            variant = copy.copy(example)
            variant.national_number = (example.national_number or 0) + step
            if phonenumbers.is_valid_number(variant):
                numbers.append(phonenumbers.format_number(variant, phonenumbers.PhoneNumberFormat.E164))
    return numbers


def test_admitted_spellings_are_those_of_the_parsed_number() -> None:
    """A stored E.164 number is spelled out without parsing exactly as parsing spells it, for valid
    numbers of every region and type (Italian leading zeros, trunk prefixes, non-geographic codes)."""
    from schemas.policy import redact

    numbers = _valid_e164_numbers()
    assert len(numbers) > 5000
    for number in numbers:
        redact._SPELLINGS.clear()
        assert admitted_spellings(number) == redact._parsed_spellings(number, None), number


def test_admitted_spellings_parse_what_is_not_e164(monkeypatch: pytest.MonkeyPatch) -> None:
    """A number not in E.164 form, or with no known country code, is parsed as any other; an E.164
    one is not parsed (the job runner spells its number once per run)."""
    import phonenumbers

    from schemas.policy import redact

    redact._SPELLINGS.clear()
    assert admitted_spellings("8 911 123-45-67") == number_spellings("8 911 123-45-67")
    assert admitted_spellings("+999123456789") == ("999123456789",)

    def refuse(*_args: object) -> None:
        raise AssertionError("parsed")

    monkeypatch.setattr(phonenumbers, "parse", refuse)
    assert admitted_spellings("+79111234568") == ("+79111234568", "79111234568", "89111234568", "9111234568")
