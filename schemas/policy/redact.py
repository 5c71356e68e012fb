"""Masking of phone numbers and secrets in anything callq prints, logs or stores for others to read.

One module, used by every printer and writer: the log processor (:mod:`ops.cli.logs`), the CLI's
output streams, and the places where text from outside enters callq's data (Bitrix24 error
descriptions, exception text, validation messages), before it is stored in an outcome, an attempt
entry or a halt reason. Pure functions over text; what counts as a secret or a number is in
:mod:`schemas.policy.redact_patterns`.

Two kinds of masking, both always on:

- **by shape**: webhook codes, token parameters and members, ``Authorization``/``Bearer``
  credentials, URL passwords, and phone-like digit runs (:mod:`schemas.policy.redact_patterns`);
- **by value**: the secrets the process is configured with (:func:`known_secrets`: webhook codes,
  OAuth client secrets and refresh tokens, API tokens, the Redis password), wherever they occur,
  and the number of the job at hand in each of its spellings (:func:`number_spellings`).
"""

from __future__ import annotations

import functools
import re
import unicodedata
from collections.abc import Callable, Collection, Iterable, Sequence
from typing import TYPE_CHECKING, Any
from urllib.parse import unquote, urlsplit, urlunsplit

import phonenumbers
from phonenumbers.phonenumberutil import COUNTRY_CODE_TO_REGION_CODE

from schemas.policy.redact_patterns import DIGIT, NUMBERS, SECRETS, fold, is_ip_address, may_hold_secret

if TYPE_CHECKING:
    from schemas.config.settings import Settings

MASK = "***"

_REST_PATH = re.compile(r"(?P<head>.*/rest/[^/]+/)(?P<code>[^/]+)(?P<tail>/.*)?")

MIN_KNOWN_SECRET_CHARS = 6
"""A configured secret shorter than this is masked only in the shapes of :mod:`schemas.policy.redact_patterns`,
not wherever its characters occur (a 3-letter password would blank every word containing it)."""

_MIN_NUMBER_DIGITS = 7  # a subscriber number without its area code: less is a count, not a number
_MIN_BARE_DIGITS = 10  # a number without country code or trunk prefix, in most plans
_MAX_BARE_DIGITS = 15  # E.164's longest; a longer bare run is an id
_MIN_SPELLING_DIGITS = 6  # a job's number in a spelling this short would match too much by chance
_MAX_MEMO = 4096  # distinct mapping keys remembered; log events use a few dozen
_LARGE_INT = 10**9  # an int of 10 digits or more may be a number written without a +


def mask_number(number: str | None) -> str | None:
    """Keep a number recognisable for support without revealing it.

    Args:
        number: a phone number in any spelling.

    Returns:
        The first five and last four characters with stars between (``+7911***4567``); short
        inputs keep fewer characters so that at least half is hidden.
    """
    if number is None:
        return None
    text = number.strip()
    if len(text) >= 12:
        return f"{text[:5]}***{text[-4:]}"
    keep = max(len(text) // 4, 0)
    return f"{text[:keep]}***{text[len(text) - keep :] if keep else ''}"


def number_spellings(number: str, region: str | None = None) -> tuple[str, ...]:
    """The ways a number may be written, longest first: E.164, its digits, the national form with
    the trunk prefix, the national significant number (``+79111234567``, ``79111234567``,
    ``89111234567``, ``9111234567``).

    Args:
        number: the number, E.164 or as a person wrote it.
        region: the region for a number written without ``+country code``.

    Returns:
        The spellings (digits, and the E.164 form with ``+``); only the digits of ``number`` when
        it cannot be parsed; none shorter than 6 digits.
    """
    known = _SPELLINGS.get((number, region))
    if known is None:
        known = _remember((number, region), _parsed_spellings(number, region))
    return known


def admitted_spellings(number: str) -> tuple[str, ...]:
    """:func:`number_spellings` of a job's number as admission stored it (the E.164 form of a valid
    number), without parsing it again: its country code is the one of 1 to 3 digits that exists
    (they are prefix-free), the rest is the national significant number. The same answers as
    :func:`number_spellings` (tests compare them on valid numbers of every region and type); a
    number not in E.164 form goes through :func:`number_spellings`.

    Args:
        number: the stored ``to_number``.
    """
    known = _SPELLINGS.get((number, None))
    if known is not None:
        return known
    digits = number[1:]
    if number[:1] != "+" or not (digits.isascii() and digits.isdigit()):
        return number_spellings(number)
    for size in (1, 2, 3):
        country_code = int(digits[:size])
        if country_code in COUNTRY_CODE_TO_REGION_CODE:
            break
    else:
        return number_spellings(number)
    return _remember((number, None), _spellings(number, digits, country_code, digits[size:]))


_SPELLINGS: dict[tuple[str, str | None], tuple[str, ...]] = {}
"""(number, region) -> its spellings: a job's number is asked for a few times per run (its log
lines, its request's masking, its outcome). Bounded: past :data:`_MAX_MEMO` numbers it starts again."""


def _remember(key: tuple[str, str | None], spellings: tuple[str, ...]) -> tuple[str, ...]:
    if len(_SPELLINGS) >= _MAX_MEMO:
        _SPELLINGS.clear()
    _SPELLINGS[key] = spellings
    return spellings


def _parsed_spellings(number: str, region: str | None) -> tuple[str, ...]:
    digits = "".join(c for c in number if c.isdigit())
    try:
        parsed = phonenumbers.parse(number, region)
    except phonenumbers.NumberParseException:
        parsed = None
    if parsed is None or parsed.country_code is None:
        return (digits,) if len(digits) >= _MIN_SPELLING_DIGITS else ()
    national = phonenumbers.national_significant_number(parsed)
    return _spellings(f"+{parsed.country_code}{national}", digits, parsed.country_code, national)


def _spellings(e164: str, digits: str, country_code: int, national: str) -> tuple[str, ...]:
    """The E.164 form, its digits without ``+``, the national significant number, the national
    form with the trunk prefix where the country has one, and the digits as written."""
    forms = {e164, e164[1:], national, digits}
    main_region = phonenumbers.region_code_for_country_code(country_code)
    metadata = phonenumbers.PhoneMetadata.metadata_for_region(main_region)
    if metadata is not None and metadata.national_prefix:
        forms.add(f"{metadata.national_prefix}{national}")
    kept = (form for form in forms if sum(c.isdigit() for c in form) >= _MIN_SPELLING_DIGITS)
    # longest first, equal lengths in order: the same tuple in every process (a set's order is not)
    return tuple(sorted(kept, key=lambda form: (-len(form), form)))


class Redactor:
    """Masks phone numbers and secrets in text and in nested data.

    Built once per process with the secrets it is configured with (:func:`known_secrets`); a
    redactor without secrets masks by shape only. Callers that know a job's number pass its
    :func:`number_spellings`.

    Args:
        secrets: exact values to mask wherever they occur.
    """

    __slots__ = ("_keys", "_secrets")

    def __init__(self, secrets: Iterable[str] = ()) -> None:
        kept = {secret for secret in secrets if len(secret) >= MIN_KNOWN_SECRET_CHARS}
        self._secrets = tuple(sorted(kept, key=len, reverse=True))  # a secret inside another goes last
        # mapping keys repeat on every log line: remember them, masked, and whether they hold a digit
        self._keys: dict[str, tuple[str, bool]] = {}

    def __repr__(self) -> str:
        return "Redactor(<secrets hidden>)"

    def text(self, text: str, numbers: Sequence[str] = (), kept: Collection[str] = ()) -> str:
        """``text`` with numbers and secrets masked.

        Args:
            text: any text: a message, an error description, a traceback, a URL.
            numbers: spellings of numbers known to be in play (the job's); masked exactly.
            kept: configuration values shown as they are although shaped like a number (line ids:
                a rented line is named by the company's own number); ``numbers`` still masks them.
        """
        for secret in self._secrets:
            if secret in text:
                text = text.replace(secret, MASK)
        # most values: no digit, or too few for a number (7 or more) or a spelling (6 or more):
        # a job id, a portal or line name, a count; only the secret shapes can be in them
        if not (_SIX_DIGITS.match(text) if text.isascii() else _ANY_DIGIT.search(text)) and not (
            numbers and any(spelling in text for spelling in numbers)
        ):
            return SECRETS.sub(_replace_secret, text) if may_hold_secret(text) else text
        return self._digits_masked(text, numbers, kept)

    def _digits_masked(self, text: str, numbers: Sequence[str], kept: Collection[str]) -> str:
        """:meth:`text`'s work on a text that may hold a number, its configured secrets masked."""
        if numbers:
            text = _mask_spellings(text, numbers)
            core = _core_digits(tuple(numbers))
            # the any-separator pattern is compiled per number: only where its digits are in the text
            if core and core in _digits_of(text):
                text = _sub_folded(_spelling_pattern(tuple(numbers)), _replace_spelling, text)
        if may_hold_secret(text):
            text = SECRETS.sub(_replace_secret, text)
        present = [value for value in kept if value in text] if kept else ()
        return _sub_folded(NUMBERS, _keeping(frozenset(present)) if present else _replace_number, text)

    def value(self, value: Any, numbers: Sequence[str] = (), kept: Collection[str] = ()) -> Any:
        """``value`` with every string in it masked: nested dicts, lists and tuples, dict keys too.

        Large ints (10 digits or more) become masked strings; other scalars stay as they are.
        """
        if isinstance(value, str):
            return self.text(value, numbers, kept)
        if isinstance(value, dict):
            return {self.key(k, numbers, kept): self.value(v, numbers, kept) for k, v in value.items()}
        if isinstance(value, list | tuple):
            return [self.value(item, numbers, kept) for item in value]
        if isinstance(value, int) and not isinstance(value, bool) and abs(value) >= _LARGE_INT:
            return self.text(str(value), numbers, kept)
        return value

    def key(self, key: Any, numbers: Sequence[str] = (), kept: Collection[str] = ()) -> Any:
        """A mapping key, masked (remembered, since the same few keys come back on every line)."""
        if not isinstance(key, str):
            return self.value(key, numbers, kept)
        if kept:
            return self.text(key, numbers, kept)
        memo = self._keys.get(key)
        if memo is None:
            if len(self._keys) >= _MAX_MEMO:
                self._keys.clear()
            done = self.text(key)
            memo = self._keys[key] = (done, DIGIT.search(fold(done)) is not None)
        done, has_digits = memo
        # a key without a digit (almost every one) holds no spelling of a number
        return _mask_spellings(done, numbers) if numbers and has_digits else done


def _mask_spellings(text: str, numbers: Sequence[str]) -> str:
    for spelling in numbers:
        if spelling in text:
            text = text.replace(spelling, mask_number(spelling) or MASK)
    return text


def _sub_folded(pattern: re.Pattern[str], replace: Callable[[re.Match[str]], str], text: str) -> str:
    """``pattern.sub(replace, text)``, matched on the ASCII view of ``text`` (:func:`fold`).

    Where the view differs from the text (other Unicode digits, dashes, spaces), a match that is
    kept keeps the text's own characters and a masked one is replaced as found in the view.
    """
    view = fold(text)
    if not DIGIT.search(view):
        return text
    if view is text:
        return pattern.sub(replace, text)
    parts: list[str] = []
    end = 0
    for match in pattern.finditer(view):
        masked = replace(match)
        if masked != match.group():
            parts += (text[end : match.start()], masked)
            end = match.end()
    return "".join((*parts, text[end:])) if parts else text


_NON_DIGIT = re.compile(r"\D")


def _digits_of(text: str) -> str:
    """The digits of ``text`` in order, as ASCII (``%20`` and ``%2B`` left out): a number spelled with
    any separators is in it as its plain digits."""
    for escape in ("%20", "%2B", "%2b"):
        if escape in text:
            text = text.replace(escape, " ")
    digits = _NON_DIGIT.sub("", text)
    return digits if digits.isascii() else "".join(str(unicodedata.decimal(c, 0)) for c in digits)


@functools.lru_cache(maxsize=256)
def _core_digits(numbers: tuple[str, ...]) -> str:
    """The shortest spelling's digits (what every spelling of the number contains), or ''."""
    spelled = {"".join(c for c in spelling if c.isdigit()) for spelling in numbers}
    spelled = {digits for digits in spelled if len(digits) >= _MIN_SPELLING_DIGITS}
    return min(spelled, key=len) if spelled else ""


@functools.lru_cache(maxsize=256)
def _spelling_pattern(numbers: tuple[str, ...]) -> re.Pattern[str]:
    """The job's number in any separator form: its digits with any non-alphanumeric characters (or
    ``%20``) between them, up to three at a time, a ``+`` (or ``%2B``) before them or not.

    One pattern around the shortest spelling (the national significant number), the longer ones
    as optional heads (country code, trunk prefix): a scan tries a few characters per position.
    """
    between = r"(?:[^0-9A-Za-z]|%20){0,3}"
    spelled = {"".join(c for c in spelling if c.isdigit()) for spelling in numbers}
    spelled = {digits for digits in spelled if len(digits) >= _MIN_SPELLING_DIGITS}
    if not spelled:
        return _NOTHING
    core = min(spelled, key=len)
    heads = sorted(
        {d[: -len(core)] for d in spelled if d.endswith(core) and d != core}, key=len, reverse=True
    )
    others = sorted((d for d in spelled if not d.endswith(core)), key=len, reverse=True)
    head = f"(?:(?:{'|'.join(between.join(h) for h in heads)}){between})?" if heads else ""
    forms = [f"{head}{between.join(core)}", *(between.join(d) for d in others)]
    plus = rf"(?:(?:\+|%2[Bb]){between})?"
    return re.compile(rf"(?=[+%0-9])(?<![0-9]){plus}(?:{'|'.join(forms)})(?![0-9])", re.ASCII)


_NOTHING = re.compile(r"(?!)")


def _replace_spelling(match: re.Match[str]) -> str:
    return _masked_digits(match.group())


def _masked_digits(text: str) -> str:
    """A number as matched (``+``, ``%2B``, separators, ``%20``), masked as its digits."""
    plus = text.startswith("+") or text[:3].upper() == "%2B"
    digits = "".join(filter(str.isdigit, (text[3:] if plus and text[0] == "%" else text).replace("%20", " ")))
    return mask_number(f"+{digits}" if plus else digits) or MASK


def _keeping(kept: frozenset[str]) -> Callable[[re.Match[str]], str]:
    """:func:`_replace_number`, except for a match that is (or whose word is) one of ``kept``."""

    def replace(match: re.Match[str]) -> str:
        start, end, view = match.start(), match.end(), match.string
        while start and view[start - 1].isascii() and view[start - 1].isalnum():
            start -= 1
        while end < len(view) and view[end].isascii() and view[end].isalnum():
            end += 1
        text = match.group()
        if text in kept or view[start:end] in kept:
            return text
        if not words.search(text):
            return _replace_number(match)
        # a run that joins a kept value to its neighbours ("74951234568 74951234568"): mask the rest
        return "".join(
            part if index % 2 else NUMBERS.sub(_replace_number, part)
            for index, part in enumerate(words.split(text))
        )

    words = re.compile(
        rf"(?<![0-9A-Za-z])({'|'.join(map(re.escape, sorted(kept, key=len, reverse=True)))})(?![0-9A-Za-z])"
    )
    return replace


def _replace_secret(match: re.Match[str]) -> str:
    kind = match.lastgroup
    return f"{match.group(kind)}{MASK}" if kind else MASK


def _replace_number(match: re.Match[str]) -> str:
    kind = match.lastgroup
    text = match.group()
    if kind == "run" and text.isdigit():  # the common case: one bare run of digits
        return mask_number(text) or MASK if _MIN_BARE_DIGITS <= len(text) <= _MAX_BARE_DIGITS else text
    if kind in _KEPT_KINDS or (kind == "ip" and is_ip_address(match.group("ip"))):
        return text
    if kind == "prefixed":  # digits ending a word that starts with letters: kept if the word is a hex id
        word_start = match.start()
        while (
            word_start and match.string[word_start - 1].isascii() and match.string[word_start - 1].isalnum()
        ):
            word_start -= 1
        word = match.string[word_start : match.end()]
        return text if len(word) >= _MIN_HEX_ID_CHARS and _HEX.fullmatch(word) else mask_number(text) or MASK
    digits = sum(map(str.isdigit, text)) - 2 * text.count("%20") - int(text[:3].upper() == "%2B")
    return text if digits < _MIN_NUMBER_DIGITS else _masked_digits(text)


_ANY_DIGIT = re.compile(r"\d")  # any Unicode digit: a text without one holds no number
# matches an ASCII text with 6 digits or more (possessive: one pass, no backtracking); one with
# fewer holds no number (7 digits at least, :data:`NUMBERS`) and no spelling (6, :func:`number_spellings`)
_SIX_DIGITS = re.compile(r"(?:[^0-9]*+[0-9]){6}")

_KEPT_KINDS = frozenset({"iso", "entry", "decimal", "dmy"})
_HEX = re.compile(r"[0-9a-fA-F]+")
_MIN_HEX_ID_CHARS = 16  # job ids have 20 hex characters, Bitrix24 call ids 32; a word of letters+digits this long and all hex is one


SHAPES = Redactor()
"""A redactor that masks by shape only, for code that knows no configured secret."""


def redact_text(
    text: str, *, numbers: Sequence[str] = (), kept: Collection[str] = (), redactor: Redactor = SHAPES
) -> str:
    """``text`` with numbers and secrets masked (by shape, plus ``numbers`` and ``redactor``'s
    secrets), except the configuration values ``kept`` (line ids, see :meth:`Redactor.text`)."""
    return redactor.text(text, numbers, kept)


def redact_value(
    value: Any, *, numbers: Sequence[str] = (), kept: Collection[str] = (), redactor: Redactor = SHAPES
) -> Any:
    """``value`` (JSON-like data) with every string in it, keys included, masked (``kept`` as in
    :func:`redact_text`)."""
    return redactor.value(value, numbers, kept)


def redact_webhook_url(url: str) -> str:
    """Hide the secret code of a Bitrix24 webhook URL.

    Args:
        url: For example `https://acme.bitrix24.ru/rest/1/s3cr3t/`.

    Returns:
        `https://acme.bitrix24.ru/rest/1/***/`; a path not shaped `/rest/<user>/<code>/` is hidden
        whole, and so are credentials and a query.
    """
    try:
        parts = urlsplit(url.strip())
    except ValueError:
        return "***"
    if not parts.scheme or not parts.netloc:
        return "***"
    match = _REST_PATH.fullmatch(parts.path)
    if match:
        path = f"{match['head']}***{match['tail'] or ''}"
    else:
        path = parts.path if parts.path in ("", "/") else "/***"
    host = parts.netloc.rpartition("@")[2]
    return urlunsplit((parts.scheme, host, path, "***" if parts.query else "", ""))


def redact_redis_url(url: str) -> str:
    """Hide the password (and any query) of a Redis URL, e.g. `redis://:***@cache:6379/0`."""
    try:
        parts = urlsplit(url)
    except ValueError:
        return "***"
    userinfo, at, host = parts.netloc.rpartition("@")
    if at:
        user, colon, _ = userinfo.partition(":")
        host = f"{user}:***@{host}" if colon else f"***@{host}"
    return urlunsplit((parts.scheme, host, parts.path, "***" if parts.query else "", ""))


def known_secrets(settings: Settings) -> tuple[str, ...]:
    """Every secret in the configuration: webhook codes, OAuth client secrets and refresh tokens,
    the portals' event tokens (``OnVoximplantCallEnd``'s application_token), API tokens (plain and
    named) and the Redis password (plain or Sentinel URL)."""
    found: list[str] = [*settings.api_tokens, *(named.token for named in settings.named_tokens)]
    for portal in settings.portals.values():
        if portal.webhook_url:
            found.append(webhook_code(portal.webhook_url) or "")
        if portal.oauth is not None:
            found += [portal.oauth.client_secret, portal.oauth.refresh_token]
        found.append(portal.calls.event_token or "")
    found += _url_password(settings.redis_url)
    return tuple(secret for secret in found if secret)


def webhook_code(url: str) -> str | None:
    """The secret code of a webhook URL ``https://portal/rest/<user>/<code>/``, or None."""
    parts = [p for p in urlsplit(url).path.split("/") if p]
    codes = [parts[i + 2] for i in range(len(parts) - 2) if parts[i] == "rest"]
    return codes[0] if codes else None


def _url_password(url: str) -> list[str]:
    userinfo, at, _ = url.partition("://")[2].rpartition("@")
    password = userinfo.partition(":")[2] if at else ""
    return [password, unquote(password)] if password else []
