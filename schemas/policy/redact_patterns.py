"""The regular expressions behind :mod:`schemas.policy.redact`: what looks like a secret or a phone number.

Each pattern is scanned once over a text, left to right; at each position the first alternative
that matches wins, and the named group that matched tells :mod:`schemas.policy.redact` what to do.

:data:`SECRETS` (masked ``***``; the named group, the part that says what the secret is, is kept):

- ``webhook``: the code in ``/rest/<user>/<code>/``.
- ``param``: the value of ``auth=``, ``access_token=``, ``refresh_token=``, ``client_secret=``,
  ``password=``, ``token=``, ``api_token=`` (query or form).
- ``member``: a JSON or Python-repr member with one of those names, ``authorization`` included.
- ``header``: ``Authorization: [Bearer|Basic|Token|Digest] <credential>``.
- ``bearer``: ``Bearer <token>`` anywhere, the token 8 characters or more and not a plain
  lower-case word (prose such as "a bearer token" or "bearer authentication" stays readable).
- ``userinfo``: the password of any ``scheme://user:password@`` URL (``redis://``, ``rediss://``,
  ``redis+sentinel://``, ``https://``...).

:data:`NUMBERS` (masked like :func:`schemas.policy.redact.mask_number`, ``+7911***4567``). Shapes that
must be *kept* are tried before the phone-like runs they would otherwise be taken for, and consume
their characters:

- kept: ``iso`` (``2026-11-30T05:55:29.123+00:00``, ``2026-11-30 10:00``); ``ip``
  (``127.0.0.1:6379``; a dotted quad with a part over 255 is a number, not an address); ``entry``
  (stream entry ids ``1764482129000-0``: 13 digits, a dash, a short sequence); ``decimal``
  (``0.30000000000000004``, ``1764482129.123``: one dot); and digits touching a letter or digit,
  or a dotted name (job ids of 20 hex characters, ``s1764482129000-0``, ``reg1332``,
  ``python3.11``, the timestamp at the end of ``callback.<hex>.1795287427``), unless the letter
  ends a JSON escape (``\\n79111234567``, ``\\u043079111234567``: masked).
- kept too: ``dmy`` (``30.11.2026``, ``11/30/2026``: a day, a month and a year).
- ``plus``: ``+`` (or ``%2B``, URL-encoded) then digits, possibly split by spaces, dots, dashes,
  underscores, slashes, parentheses, a comma or URL-encoded spaces (``%20``): masked when it holds
  7 digits or more (E.164 allows 15; more are masked too, to be safe).
- ``run``: digit groups, possibly joined by those separators (``8(911)1234567`` too: a
  parenthesised group needs none): masked when joined by separators and holding 7 digits or more,
  or when a single run of 10 to 15 digits (a number without its country code or trunk prefix has
  10 digits in most plans; a unix time has 10 or 13 and is masked with it: safety first). Runs of
  7 to 9 digits (counts, sizes) and over 15 (ids) are kept.
- ``prefixed``: a run of 10 to 15 digits ending a word that starts with letters (``id79111234567``);
  :mod:`schemas.policy.redact` keeps it when the whole word is a long hex id.

The patterns are ASCII; :func:`fold` gives a same-length view of a text in which other Unicode
digits (full-width, Arabic-Indic...), dashes, spaces, ``＋`` and full-width parentheses are their
ASCII counterparts, so that the patterns find numbers spelled with them.
"""

from __future__ import annotations

import re
import unicodedata

SECRET_NAMES = ("auth", "access_token", "refresh_token", "client_secret", "password", "token", "api_token")
"""Parameter and member names whose value is a secret (compared case-insensitively)."""

SECRET_GROUPS = ("webhook", "param", "member", "header", "bearer", "userinfo")
"""The groups of :data:`SECRETS`: the kept part before the masked secret."""

_NAMES = "|".join(SECRET_NAMES)
_WORD_BEFORE = r"(?<![A-Za-z0-9_])"

SECRETS = re.compile(
    rf"""
      (?P<webhook>/rest/\d+/)[^/\s?#"'\\]+
    | (?P<param>{_WORD_BEFORE}(?i:{_NAMES})=)[^&\s"'\\]+
    | (?P<member>(?P<q1>["'])(?i:{_NAMES}|authorization)(?P=q1)\s*:\s*(?P<q2>["']))(?:(?!(?P=q2))[^\\]|\\.)*
    | (?P<header>{_WORD_BEFORE}(?i:authorization)\s*[:=]\s*(?:(?i:bearer|basic|token|digest)\s+)?)[^\s"',;]+
    | (?P<bearer>{_WORD_BEFORE}(?i:bearer)\s+)(?=[^\s"',;]{{8}})(?![a-z]+(?:[\s"',;)]|$))[^\s"',;]+
    | (?P<userinfo>(?<![A-Za-z0-9+.\-])[A-Za-z][A-Za-z0-9+.\-]*+://[^\s:/@"']*:)[^\s@/"']+(?=@)
    """,
    re.VERBOSE | re.ASCII,
)

_SEP = r"(?:[ .\-\u00a0_/]|%20)"  # between two digit groups, once or twice; a comma only alone
_JOIN = rf"(?:{_SEP}{{1,2}}|,|(?<=\))|(?=\())"  # a parenthesised group needs no separator: 8(911)1234567
_NOT_A_DATE = r"(?!\(?\d{4}-\d{2}-\d{2})"  # a run never swallows a date (nor starts on one)
# not inside a word; a JSON or repr escape before the digits ("\n79111234567") is a boundary too
_BOUNDARY = r"(?:(?<![A-Za-z0-9])|(?<=\\[nrt])|(?<=\\u[0-9A-Fa-f]{4}))"
_GROUP = r"(?:\(\d{1,15}\)|\d{1,15})"  # a parenthesis only as a pair: "(911)", never the text's own

NUMBERS = re.compile(
    rf"""
    (?=[+%0-9(])  # each alternative starts with one of these: lets the scan skip other characters fast
    (?:
      (?P<plus>(?:\+|%2[Bb])\(?\d(?:(?:(?:[ .\-\u00a0()_/]|%20){{0,3}}|,){_NOT_A_DATE}\d)*)
    | {_BOUNDARY}(?<![A-Za-z0-9]\.)(?:
          (?P<iso>\d{{4}}-\d{{2}}-\d{{2}}(?:[T ]\d{{2}}:\d{{2}}(?::\d{{2}}(?:[.,]\d+)?)?(?:Z|[+-]\d{{2}}(?::?\d{{2}})?)?)?)
        | (?P<ip>\d{{1,3}}(?:\.\d{{1,3}}){{3}})(?::\d{{1,5}})?(?![.\d])
        | (?P<entry>\d{{13}}-\d{{1,6}})
        | (?P<decimal>\d+\.\d+)(?![.\d])
        | (?P<dmy>\d{{1,2}}(?P<sep_dmy>[./])\d{{1,2}}(?P=sep_dmy)\d{{4}})(?![./\d])
        | (?P<run>{_NOT_A_DATE}{_GROUP}(?:{_JOIN}{_NOT_A_DATE}{_GROUP})*)
      )(?![A-Za-z0-9])
    | (?<=[A-Za-z])(?<!\\u)(?P<prefixed>\d{{10,15}})(?![A-Za-z0-9]|-\d)
    )
    """,
    re.VERBOSE | re.ASCII,
)

DIGIT = re.compile(r"[0-9]")


_FOLDED_CHARS = {0xFF0B: "+", 0xFF08: "(", 0xFF09: ")", 0x2212: "-", 0xFE63: "-", 0xFF0D: "-"}


class _FoldTable(dict[int, int | str]):
    """A ``str.translate`` table filled as characters are met (listing every Unicode digit up front
    would cost an import-time scan of all code points); one entry per distinct character seen."""

    def __missing__(self, code: int) -> int | str:
        char = chr(code)
        digit = unicodedata.decimal(char, None)
        if digit is not None:
            folded: int | str = str(digit)
        elif code in _FOLDED_CHARS:
            folded = _FOLDED_CHARS[code]
        else:
            category = unicodedata.category(char)
            folded = "-" if category == "Pd" else " " if category == "Zs" else code
        if len(self) < 65536:
            self[code] = folded
        return folded


_FOLD = _FoldTable()


def fold(text: str) -> str:
    """``text`` with other Unicode digits, dashes, spaces, ``＋`` and full-width parentheses made ASCII.

    One character for one, so a match in the folded text has the same span in the original.
    An ASCII text is returned as it is (the same object).
    """
    return text if text.isascii() else text.translate(_FOLD)


def may_hold_secret(text: str) -> bool:
    """A cheap test that lets most texts skip :data:`SECRETS`: each secret shape needs one of these."""
    return (
        "=" in text
        or "/rest/" in text
        or "@" in text
        or "earer" in text
        or "EARER" in text
        or "uthoriz" in text
        or "UTHORIZ" in text
        or (":" in text and ('"' in text or "'" in text))
    )


def is_ip_address(text: str) -> bool:
    """True for a dotted quad whose parts are all 0..255 (``911.123.45.67`` is a number)."""
    return all(int(part) <= 255 for part in text.split("."))
