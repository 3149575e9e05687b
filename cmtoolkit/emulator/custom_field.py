"""A list's custom field: its personalisation tag and which incoming values it stores."""

from __future__ import annotations

import re
from dataclasses import dataclass, field
from datetime import date as _date
from functools import lru_cache

DATA_TYPES = ("Text", "Number", "MultiSelectOne", "MultiSelectMany", "Date", "Country", "USState")
MULTI = ("MultiSelectOne", "MultiSelectMany")
MAX_VALUE_LENGTH = 250
DATE_MIN, DATE_MAX = _date(1900, 1, 1), _date(2076, 6, 6)


@lru_cache(maxsize=4096)  # pure, and asked for on every value of every subscriber written
def field_key(field_name: str) -> str:
    """The personalisation tag of a field: ``[`` + name without whitespace + ``]``.

    From the fixtures ("new date field" → "[newdatefield]"); the full real rule is unconfirmed.
    """
    return "[" + re.sub(r"\s+", "", field_name) + "]"


@dataclass
class CustomField:
    name: str
    data_type: str
    options: list[str] = field(default_factory=list)
    visible: bool = True

    @property
    def key(self) -> str:
        return field_key(self.name)

    @property
    def tag(self) -> str:
        return self.key[1:-1]

    def as_json(self) -> dict[str, object]:
        return {
            "FieldName": self.name,
            "Key": self.key,
            "DataType": self.data_type,
            "FieldOptions": list(self.options),
            "VisibleInPreferenceCenter": self.visible,
        }

    def normalise(self, value: object) -> str | None:
        """The stored form of one incoming value, or None when the value is ignored.

        Invalid values are *ignored*, not errors (the docs say so for out-of-range dates; the
        emulator applies it to every type): Text longer than 250 characters, a non-numeric
        Number, an unparseable or out-of-range Date, an option not in ``FieldOptions``.
        """
        if value is None:
            return None
        text = str(value).strip()
        if not text or len(text) > MAX_VALUE_LENGTH:
            return None
        t = self.data_type
        if t == "Number":
            try:
                number = float(text)
            except ValueError:
                return None
            if number != number or number in (float("inf"), float("-inf")):
                return None
            return str(int(number)) if number.is_integer() and "." not in text else text
        if t == "Date":
            m = re.match(r"^(\d{4})[-/](\d{1,2})[-/](\d{1,2})(?:[ T].*)?$", text)
            if not m:
                return None
            try:
                d = _date(int(m[1]), int(m[2]), int(m[3]))
            except ValueError:
                return None
            return d.isoformat() if DATE_MIN <= d <= DATE_MAX else None
        if t in MULTI:
            for option in self.options:
                if option.casefold() == text.casefold():
                    return option
            return None
        return text
