"""The DuckDB profile store: schema, properties, loaders, segments, interactions, consent.

Every property is a multi-valued ``VARCHAR[]`` column of the wide ``profiles`` table; the schema,
the load pipeline and the segment rule language are described in docs/profiles.md.
"""

from __future__ import annotations

from cmtoolkit.profiles.consent import (
    consent_condition,
    consenting_profiles_sql,
    consents,
    create_consenting_table,
)
from cmtoolkit.profiles.loaders import LoadResult
from cmtoolkit.profiles.properties import PROPERTY_TYPES
from cmtoolkit.profiles.quoting import quote_ident
from cmtoolkit.profiles.schema import Migration
from cmtoolkit.profiles.segments import SegmentInfo, Segments, compile_rule
from cmtoolkit.profiles.store import Store, StoreStats

__all__ = [
    "PROPERTY_TYPES",
    "LoadResult",
    "Migration",
    "SegmentInfo",
    "Segments",
    "Store",
    "StoreStats",
    "compile_rule",
    "consent_condition",
    "consenting_profiles_sql",
    "consents",
    "create_consenting_table",
    "quote_ident",
]
