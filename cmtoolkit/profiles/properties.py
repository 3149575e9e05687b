"""Property definitions: the six types, their value checks, and adding a property column.

Every property is multi-valued: a ``VARCHAR[]`` column of ``profiles`` holding an ordered list of
distinct, non-empty strings; a property without values is ``NULL`` (never ``[]``). The type is
used to validate loaded values, to infer a new property's type, and by rules that compare numbers
or dates. The checks below are SQL expressions over one value ``x`` so that validation and
inference run set-based in DuckDB.
"""

from __future__ import annotations

import duckdb

from cmtoolkit.errors import ConfigurationError
from cmtoolkit.profiles.quoting import check_property_name, quote_ident

PROPERTY_TYPES = ("text", "number", "date", "datetime", "email", "boolean")

_DATE_RE = r"\d{4}-\d{2}-\d{2}"
_DATETIME_RE = r"\d{4}-\d{2}-\d{2}[ T]\d{2}:\d{2}(:\d{2}(\.\d+)?)?(Z|[+-]\d{2}(:?\d{2})?)?"
_EMAIL_RE = r"[^@\s]+@[^@\s]+\.[^@\s]+"

# One SQL predicate per type over a single value ``x`` (a VARCHAR, never NULL or empty): the one
# home of what fits a type, for the loaders, type inference and the import alike.
VALUE_CHECKS: dict[str, str] = {
    "text": "true",
    "number": "TRY_CAST(x AS DOUBLE) IS NOT NULL",
    "date": f"regexp_full_match(x, '{_DATE_RE}') AND TRY_CAST(x AS DATE) IS NOT NULL",
    "datetime": (
        f"regexp_full_match(x, '{_DATETIME_RE}') AND TRY_CAST(x AS TIMESTAMP) IS NOT NULL"
    ),
    # Emails are validated trimmed: matching is trimmed and case-insensitive, so stray spaces or
    # capitals (as typed into a form) are not an error.
    "email": f"regexp_full_match(trim(x), '{_EMAIL_RE}')",
    "boolean": "lower(x) IN ('true', 'false')",
}
# Order in which a new property's type is inferred: the first type every value satisfies.
INFERENCE_ORDER = ("boolean", "number", "date", "datetime", "email")

TYPE_HELP = ", ".join(PROPERTY_TYPES)


def check_type(type_: str) -> str:
    if type_ not in PROPERTY_TYPES:
        raise ConfigurationError(f"unknown property type {type_!r}; use one of {TYPE_HELP}")
    return type_


def all_values(column_sql: str, type_: str) -> str:
    """SQL: every value of the list ``column_sql`` satisfies ``type_`` (true for NULL lists)."""
    check = VALUE_CHECKS[type_]
    if check == "true":
        return "true"
    return f"coalesce(len(list_filter({column_sql}, lambda x: NOT ({check}))) = 0, true)"


def first_bad_value(column_sql: str, type_: str) -> str:
    check = VALUE_CHECKS[type_]
    return f"list_filter({column_sql}, lambda x: NOT ({check}))[1]"


def defined_properties(con: duckdb.DuckDBPyConnection) -> dict[str, str]:
    rows = con.execute("SELECT name, type FROM property_definitions ORDER BY name").fetchall()
    return {name: type_ for name, type_ in rows}


def resolve(existing: dict[str, str], name: str) -> str | None:
    """The defined property ``name`` refers to, folding case as DuckDB columns do."""
    if name in existing:
        return name
    folded = [n for n in existing if n.lower() == name.lower()]
    return folded[0] if folded else None


def define_property(con: duckdb.DuckDBPyConnection, name: str, type_: str) -> bool:
    """Define ``name`` with ``type_`` and add its column; False when it already exists as such.

    A property that exists with another type is an error: a type never changes silently.
    """
    check_property_name(name)
    check_type(type_)
    existing = defined_properties(con)
    known = resolve(existing, name)
    if known is not None:
        if known != name:
            raise ConfigurationError(
                f"property {name!r} clashes with existing property {known!r} (names are "
                "case-insensitive); use the existing name"
            )
        if existing[known] != type_:
            raise ConfigurationError(
                f"property {name!r} already has type {existing[known]!r}, not {type_!r}; "
                "an existing property keeps its type"
            )
        return False
    con.execute("INSERT INTO property_definitions (name, type) VALUES (?, ?)", [name, type_])
    con.execute(f"ALTER TABLE profiles ADD COLUMN {quote_ident(name)} VARCHAR[]")
    return True
