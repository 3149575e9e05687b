"""Consent objectives: which profiles a connection with objectives may process.

A profile's consent lives in two ordinary properties, ``consented_objectives`` and
``refused_objectives`` (defined by the first migration). A profile *consents to* objective ``o``
when ``o`` is in its consented list **and not** in its refused list: an explicit refusal wins over
a consent for the same objective, because a refusal is the safer reading of contradictory data.
A connection with objectives processes profiles that consent to **at least one** of them; a
connection without objectives processes every profile.

The sync engines join on :func:`consenting_profiles_sql` (or a temp table from
:func:`create_consenting_table`); :func:`consents` is the same rule in Python, for a profile that
does not exist yet (an import about to create it).
"""

from __future__ import annotations

from collections.abc import Iterable, Sequence

import duckdb

from cmtoolkit.profiles.quoting import quote_ident

CONSENTED = "consented_objectives"
REFUSED = "refused_objectives"


def consent_predicate(alias: str = "p", objectives: str = "?") -> str:
    """The rule as SQL over ``profiles AS alias``; ``objectives`` is the SQL of the list
    (a ``?`` or ``$name`` parameter), so statements with named parameters can use it too."""
    a = quote_ident(alias)
    return (
        f"coalesce(len(list_filter({objectives}::VARCHAR[], lambda o:"
        f" list_contains(coalesce({a}.{CONSENTED}, []), o)"
        f" AND NOT list_contains(coalesce({a}.{REFUSED}, []), o))) > 0, false)"
    )


def consent_condition(objectives: Sequence[str], alias: str = "p") -> tuple[str, list[object]]:
    """A SQL boolean over ``profiles AS alias`` and its parameters (``true`` without objectives)."""
    if not objectives:
        return "true", []
    return consent_predicate(alias), [list(objectives)]


def consenting_profiles_sql(objectives: Sequence[str]) -> tuple[str, list[object]]:
    """``SELECT profile_id FROM profiles …`` for the profiles that consent to any objective."""
    cond, params = consent_condition(objectives)
    return f"SELECT p.profile_id FROM profiles AS p WHERE {cond}", params


def create_consenting_table(
    con: duckdb.DuckDBPyConnection,
    objectives: Sequence[str],
    name: str = "consenting_profiles",
) -> str:
    """Materialise the consenting profile ids as a temp table (``profile_id``); return its name."""
    sql, params = consenting_profiles_sql(objectives)
    con.execute(f"CREATE OR REPLACE TEMP TABLE {quote_ident(name)} AS {sql}", params)
    return name


def consents(
    consented: Iterable[str] | None, refused: Iterable[str] | None, objectives: Sequence[str]
) -> bool:
    """The same rule for values in hand (e.g. a profile an import would create)."""
    if not objectives:
        return True
    effective = set(consented or ()) - set(refused or ())
    return any(o in effective for o in objectives)
