"""The generic readers of a connection file's values: each checks one value's shape and fails
with the key path and what to write instead (:class:`ConnectionFileError`)."""

from __future__ import annotations

import difflib
from collections.abc import Callable, Iterable, Mapping
from typing import NoReturn, TypeVar

from cmtoolkit.errors import ConnectionFileError

T = TypeVar("T")


class Reader:
    def __init__(self, file: str) -> None:
        self.file = file

    def fail(self, key: str | None, message: str) -> NoReturn:
        raise ConnectionFileError(message, file=self.file, key=key or None)

    def mapping(self, value: object, key: str, allowed: tuple[str, ...]) -> dict[str, object]:
        what = f"'{key}'" if key else "the file"
        if not isinstance(value, dict):
            self.fail(
                key,
                f"{what} must be a mapping of keys to values, got {kind_of(value)}; "
                f"write 'key: value' lines (allowed keys: {', '.join(allowed)})",
            )
        for k in value:
            if not isinstance(k, str):
                self.fail(key, f"key {k!r} must be text; allowed keys: {', '.join(allowed)}")
            if k not in allowed:
                close = difflib.get_close_matches(k, allowed, n=1, cutoff=0.6)
                hint = f"did you mean '{close[0]}'?" if close else "remove it"
                self.fail(
                    _join(key, k),
                    f"unknown key '{k}'; {hint} (allowed here: {', '.join(allowed)})",
                )
        return value

    def required(self, data: Mapping[str, object], key: str, name: str, hint: str) -> object:
        if data.get(name) is None:
            self.fail(_join(key, name), f"missing required key '{name}': {hint}")
        return data[name]

    def required_text(self, data: Mapping[str, object], key: str, name: str, hint: str) -> str:
        return self.text(self.required(data, key, name, hint), _join(key, name))

    def text(self, value: object, key: str, hint: str = "") -> str:
        if isinstance(value, bool) or not isinstance(value, (str, int, float)):
            self.fail(key, f"expected text, got {kind_of(value)}{'; ' + hint if hint else ''}")
        text = str(value).strip()
        if not text:
            self.fail(key, f"must not be empty{'; ' + hint if hint else ''}")
        return text

    def optional_text(self, value: object, key: str) -> str | None:
        return None if value is None else self.text(value, key)

    def boolean(self, value: object, key: str, default: bool) -> bool:
        if value is None:
            return default
        if not isinstance(value, bool):
            self.fail(key, f"expected true or false, got {kind_of(value)} {value!r}")
        return value

    def seq(self, value: object, key: str, hint: str) -> list[object]:
        if value is None:
            return []
        if not isinstance(value, list):
            self.fail(key, f"expected a list, got {kind_of(value)}; {hint}")
        return value

    def texts(self, value: object, key: str, hint: str) -> tuple[str, ...]:
        items = [self.text(v, f"{key}[{i}]") for i, v in enumerate(self.seq(value, key, hint))]
        for i, item in enumerate(items):
            if item in items[:i]:
                self.fail(f"{key}[{i}]", f"{item!r} is listed twice; remove the duplicate")
        return tuple(items)

    def choice(self, value: object, key: str, choices: tuple[str, ...], what: str) -> str:
        if not isinstance(value, str) or value not in choices:
            shown = repr(value) if isinstance(value, (str, int, float)) else kind_of(value)
            close = difflib.get_close_matches(str(value), choices, n=1, cutoff=0.6)
            hint = f"; did you mean '{close[0]}'?" if close else ""
            self.fail(key, f"unknown {what} {shown} (expected one of {', '.join(choices)}){hint}")
        return value

    def items(
        self, value: object, key: str, hint: str, read: Callable[[object, str], T]
    ) -> tuple[T, ...]:
        out = []
        for i, item in enumerate(self.seq(value, key, hint)):
            out.append(read(item, f"{key}[{i}]"))
        return tuple(out)

    def unique(self, values: Iterable[tuple[str, str]], key: str, what: str) -> None:
        seen: dict[str, str] = {}
        for item_key, target in values:
            if target in seen:
                self.fail(
                    item_key,
                    f"{what} {target!r} is already the target of {seen[target]}; "
                    "two mappings into one target conflict: remove or merge one of them",
                )
            seen[target] = item_key


def _join(parent: str, child: str) -> str:
    return f"{parent}.{child}" if parent else child


def kind_of(value: object) -> str:
    """How a value's type reads in a message (\"a list\", \"text\", \"nothing\")."""
    if value is None:
        return "nothing"
    return {
        bool: "a boolean",
        int: "a number",
        float: "a number",
        str: "text",
        list: "a list",
        dict: "a mapping",
    }.get(type(value), type(value).__name__)
