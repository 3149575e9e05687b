"""SQL identifiers made from user input: the one quoting helper and property-name validation.

Property names become column names of the wide ``profiles`` table, so they are user strings that
end up in SQL text. They go through :func:`quote_ident` and nothing else; every *value* is a
prepared-statement parameter. A name may hold spaces, quotes or any unicode: quoting makes it a
literal identifier, so ``x"; DROP TABLE profiles; --`` is just an odd column name.
"""

from __future__ import annotations

from cmtoolkit.errors import ConfigurationError

MAX_NAME_LENGTH = 120
# Columns of ``profiles`` that are not properties. DuckDB identifiers are case-insensitive, so
# every comparison below folds case.
RESERVED_COLUMNS = frozenset({"profile_id", "created_at", "updated_at", "rowid"})


def quote_ident(name: str) -> str:
    """``name`` as a double-quoted SQL identifier (embedded quotes doubled)."""
    if "\x00" in name:
        raise ConfigurationError(f"identifier {name!r} contains a NUL character")
    return '"' + name.replace('"', '""') + '"'


def check_property_name(name: object) -> str:
    """Return ``name`` when it can be a property name, else raise :class:`ConfigurationError`."""
    if not isinstance(name, str):
        raise ConfigurationError(f"property name {name!r} is not a string")
    if not name.strip():
        raise ConfigurationError("property name is empty; give every property a name")
    if len(name) > MAX_NAME_LENGTH:
        raise ConfigurationError(
            f"property name {name[:40]!r}… is {len(name)} characters; use at most {MAX_NAME_LENGTH}"
        )
    if any(ord(c) < 32 for c in name):
        raise ConfigurationError(f"property name {name!r} contains control characters")
    if name.lower() in RESERVED_COLUMNS:
        raise ConfigurationError(
            f"{name!r} is a reserved column of the profile store; rename the property"
        )
    return name
