"""A string that never shows itself.

Secrets (API keys, access and refresh tokens, client secrets) are wrapped in :class:`Secret` as soon
as they are read, so that a repr, an f-string, a log line or an exception message can only ever show
``Secret('***')``. Code that must send the value calls :meth:`Secret.reveal` at the last moment.
"""

from __future__ import annotations

from typing import Any


class Secret:
    """An opaque secret value; ``str()``/``repr()`` are redacted, equality compares values."""

    __slots__ = ("_value",)

    def __init__(self, value: str) -> None:
        if isinstance(value, Secret):
            value = value.reveal()
        if not isinstance(value, str):
            raise TypeError("Secret takes a str")
        self._value = value

    def reveal(self) -> str:
        """The plain value, for the one place that must send it."""
        return self._value

    def __repr__(self) -> str:
        return "Secret('***')"

    __str__ = __repr__

    def __format__(self, spec: str) -> str:
        return repr(self)

    def __bool__(self) -> bool:
        return bool(self._value)

    def __eq__(self, other: object) -> bool:
        return isinstance(other, Secret) and other._value == self._value

    def __hash__(self) -> int:
        return hash(("Secret", self._value))

    def __reduce__(self) -> Any:
        # Pickling would write the plain value to disk (e.g. a multiprocessing queue): refuse.
        raise TypeError("a Secret cannot be pickled")


def redact(text: str, *secrets: Secret | str | None) -> str:
    """``text`` with every occurrence of the given secrets replaced by ``***``."""
    for s in secrets:
        value = s.reveal() if isinstance(s, Secret) else s
        if value:
            text = text.replace(value, "***")
    return text
