"""A parser for the YAML subset of the deployment files under ``ops/deploy/``.

Docker is not needed to check those files: YAML is read by this small parser of the subset they use. It
refuses anything else, so it cannot misread silently (``tests/ops/deploy/test_files.py`` compares it with
PyYAML where PyYAML is installed).
"""

from __future__ import annotations

import json
import re
from pathlib import Path
from typing import Any

_KEY = re.compile(r"([A-Za-z0-9_.$/-]+):(?:[ ]+(.*))?")
_INT = re.compile(r"[-+]?(0|[1-9][0-9_]*)")
_FLOAT = re.compile(r"[-+]?[0-9][0-9_]*\.[0-9_]*([eE][-+][0-9]+)?")
_AMBIGUOUS = re.compile(r"[-+]?(0[0-9_]+|0[xob].*|[0-9][0-9_]*(:[0-5]?[0-9])+(\.[0-9_]*)?|\.[A-Za-z]+)")
_BOOLS = {"yes": True, "no": False, "true": True, "false": False, "on": True, "off": False}
_NULLS = {"", "~", "null", "Null", "NULL"}


def _spellings(word: str) -> set[str]:
    return {word, word.capitalize(), word.upper()}


def _strip_comment(text: str) -> str:
    """``text`` without a trailing `` # comment`` (quotes that open a token are respected)."""
    quote, i = "", 0
    while i < len(text):
        ch = text[i]
        if quote == "'" and text.startswith("''", i):
            i += 1  # an escaped quote
        elif quote == '"' and ch == "\\":
            i += 1  # an escaped character
        elif quote:
            quote = "" if ch == quote else quote
        elif ch in "'\"" and (i == 0 or text[i - 1] in " [,:"):
            quote = ch
        elif ch == "#" and (i == 0 or text[i - 1] in " \t"):
            return text[:i].rstrip()
        i += 1
    return text.rstrip()


def _scalar(token: str, where: str) -> Any:
    """A plain, quoted or flow-sequence scalar, resolved like PyYAML's YAML 1.1 (safe_load)."""
    if token.startswith('"'):
        return json.loads(token)
    if token.startswith("'"):
        if len(token) < 2 or not token.endswith("'"):
            raise ValueError(f"{where}: unterminated quote")
        return token[1:-1].replace("''", "'")
    if token.startswith("["):
        value = json.loads(token)  # only JSON-style flow sequences are accepted
        if not isinstance(value, list):
            raise ValueError(f"{where}: not a sequence")
        return value
    if token == "{}":
        return {}
    if token[:1] in set("{&*!%@`|>") or ": " in token or token.startswith("- "):
        raise ValueError(f"{where}: outside the supported YAML subset: {token!r}")
    return _resolve_plain(token, where)


def _resolve_plain(token: str, where: str) -> Any:
    if token in _NULLS:
        return None
    for word, value in _BOOLS.items():
        if token in _spellings(word):
            return value
    if _AMBIGUOUS.fullmatch(token):
        raise ValueError(f"{where}: {token!r} means something surprising to YAML 1.1: quote it")
    if _INT.fullmatch(token):
        return int(token.replace("_", ""))
    if _FLOAT.fullmatch(token):
        return float(token.replace("_", ""))
    return token


def _fold(body: list[str], where: str) -> str:
    out = ""
    previous_text = False
    for line in body:
        if line.startswith((" ", "\t")):
            raise ValueError(f"{where}: more-indented lines in a folded scalar are not supported")
        if not line:
            out += "\n"
            previous_text = False
            continue
        out += (" " if previous_text else "") + line
        previous_text = True
    return out


class _YamlSubset:
    """Block mappings and sequences, plain/quoted scalars, ``|``/``>`` scalars, JSON flow lists."""

    def __init__(self, text: str, name: str) -> None:
        self.lines = text.splitlines()
        self.name = name
        self.i = 0

    def where(self) -> str:
        return f"{self.name}:{self.i + 1}"

    def peek(self) -> tuple[int, str] | None:
        """(indent, text) of the next line with content, skipping blank and comment lines."""
        while self.i < len(self.lines):
            raw = self.lines[self.i]
            body = raw.lstrip(" ")
            if body.startswith("\t"):
                raise ValueError(f"{self.where()}: tab in indentation")
            text = _strip_comment(body)
            if text:
                if text in ("---", "..."):
                    raise ValueError(f"{self.where()}: several documents are not supported")
                return len(raw) - len(body), text
            self.i += 1
        return None

    def document(self) -> Any:
        first = self.peek()
        value = self.node(first[0]) if first else None
        if self.peek() is not None:
            raise ValueError(f"{self.where()}: unexpected indentation")
        return value

    def node(self, indent: int) -> Any:
        nxt = self.peek()
        assert nxt is not None and nxt[0] == indent
        if nxt[1] == "-" or nxt[1].startswith("- "):
            return self.sequence(indent)
        return self.mapping(indent)

    def sequence(self, indent: int) -> list[Any]:
        items: list[Any] = []
        while (nxt := self.peek()) and nxt[0] == indent and (nxt[1] == "-" or nxt[1].startswith("- ")):
            rest = nxt[1][1:].strip()
            if not rest:
                self.i += 1
                child = self.peek()
                items.append(self.node(child[0]) if child and child[0] > indent else None)
            elif _KEY.fullmatch(rest):
                # "- key: value": the item is a mapping whose keys sit two columns further in
                self.lines[self.i] = " " * (indent + 2) + rest
                items.append(self.mapping(indent + 2))
            else:
                self.i += 1
                items.append(_scalar(rest, self.where()))
        return items

    def mapping(self, indent: int) -> dict[str, Any]:
        result: dict[str, Any] = {}
        while (nxt := self.peek()) and nxt[0] >= indent:
            if nxt[0] > indent:
                raise ValueError(f"{self.where()}: unexpected indentation")
            if nxt[1] == "-" or nxt[1].startswith("- "):
                break
            match = _KEY.fullmatch(nxt[1])
            if match is None:
                raise ValueError(f"{self.where()}: expected `key: value`, got {nxt[1]!r}")
            key, value = match.group(1), (match.group(2) or "").strip()
            if key in result:
                raise ValueError(f"{self.where()}: duplicate key {key!r}")
            self.i += 1
            result[key] = self.value(value, indent)
        return result

    def value(self, token: str, indent: int) -> Any:
        if token[:1] in ("|", ">"):
            return self.block_scalar(token, indent)
        if token:
            return _scalar(token, self.where())
        child = self.peek()
        if child and child[0] > indent:
            return self.node(child[0])
        if child and child[0] == indent and (child[1] == "-" or child[1].startswith("- ")):
            return self.sequence(indent)
        return None

    def block_scalar(self, header: str, indent: int) -> str:
        style, chomp = header[0], header[1:]
        if chomp not in ("", "-"):
            raise ValueError(f"{self.where()}: block scalar header {header!r} is not supported")
        lines: list[str] = []
        while self.i < len(self.lines):
            raw = self.lines[self.i]
            if raw.strip() and len(raw) - len(raw.lstrip(" ")) <= indent:
                break
            lines.append(raw.rstrip() if raw.strip() else "")
            self.i += 1
        while lines and not lines[-1]:
            lines.pop()
        if not lines:
            return ""
        column = min(len(line) - len(line.lstrip(" ")) for line in lines if line)
        body = [line[column:] for line in lines]
        text = "\n".join(body) if style == "|" else _fold(body, self.where())
        return text if chomp == "-" else text + "\n"


def parse_yaml(text: str, name: str) -> Any:
    """Parse ``text`` (from a file called ``name``) with the subset parser."""
    return _YamlSubset(text, name).document()


def load_yaml(path: Path) -> Any:
    """Parse ``path`` with the subset parser; ValueError names the line of anything unsupported."""
    return parse_yaml(path.read_text(encoding="utf-8"), path.name)
