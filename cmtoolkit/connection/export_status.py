"""Status checks of the export and targeting goals that catch, before a run, what would fail
every row (DESIGN §4 status, issue 15): a matching property whose values are not email
addresses, an export matching property that disagrees with the import's email identifier, and
a value that cannot fit its Campaign Monitor field (segment names into a Number field).

``connection.status`` calls these; they add errors and warnings to its checks.
"""

from __future__ import annotations

import re
from collections.abc import Callable, Mapping, Sequence

from cmtoolkit.connection.model import Connection

EMAIL_RE = re.compile(r"[^@\s]+@[^@\s.]+(\.[^@\s.]+)+")
#: How many values of the matching property status samples from the store.
SAMPLE = 200
#: Below this share of valid addresses in the sample, the property is not an email property.
MIN_VALID = 0.5
#: Field types a list of names (segments, interactions) cannot be written to.
NOT_FOR_NAMES = ("Number", "Date")

Report = Callable[[str, str], None]
Sampler = Callable[[str, int], Sequence[str]]


def match_property(conn: Connection) -> tuple[str, str] | None:
    """(key, property) of the property export and targeting take the email from."""
    if conn.export is not None and conn.export.match_property:
        return "export.match_property", conn.export.match_property
    if conn.targeting is not None:
        return "targeting", "email"
    return None


def check_store(
    conn: Connection, props: Mapping[str, str], sample: Sampler | None, error: Report, warn: Report
) -> None:
    """The matching property holds email addresses; it agrees with the import's identifier."""
    found = match_property(conn)
    if found is None:
        return
    key, prop = found
    if prop in props and sample is not None and props[prop] != "email":
        values = [v.strip() for v in sample(prop, SAMPLE) if v and v.strip()]
        valid = sum(1 for v in values if EMAIL_RE.fullmatch(v))
        if values and valid / len(values) < MIN_VALID:
            bad = next(v for v in values if not EMAIL_RE.fullmatch(v))
            error(
                key,
                f"property {prop!r} does not hold email addresses ({valid} of {len(values)} "
                f"sampled values are, e.g. not {bad!r}): every row would be INVALID; name the "
                "property that holds the email",
            )
    if conn.import_ is not None and conn.export is not None and conn.export.match_property:
        ids = [i.property for i in conn.import_.identifiers if i.field == "EmailAddress"]
        if ids and conn.export.match_property not in ids:
            warn(
                "export.match_property",
                f"export matches on property {conn.export.match_property!r} but the import's "
                f"email identifier is {ids[0]!r}: the two goals would match different people; "
                "use the same property in both",
            )


def check_fields(
    conn: Connection,
    list_name: str,
    types: Mapping[str, str],
    error: Report,
    warn: Report,
) -> bool:
    """Each export value fits its field's type (``types``: field name to DataType). Returns
    whether missing fields are taken care of (``create_missing``)."""
    exp = conn.export
    if exp is None:
        return False
    for i, m in enumerate(exp.mappings):
        data_type = types.get(m.field)
        if data_type in NOT_FOR_NAMES and m.value in ("segments", "interactions"):
            error(
                f"export.mappings[{i}].field",
                f"{m.value} are names, and field {m.field!r} on list {list_name!r} is "
                f"{data_type}: every row would fail; map them to a Text or MultiSelectMany field",
            )
        elif data_type is None and exp.create_missing:
            kind = "MultiSelectMany" if m.value in ("segments", "interactions") else "Text"
            warn(
                f"export.mappings[{i}].field",
                f"field {m.field!r} does not exist yet on list {list_name!r}; export will create "
                f"it ({kind}, create_missing)",
            )
    return exp.create_missing
