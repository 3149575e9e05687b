"""The DuckDB profile store: schema, properties, loaders, segments, interactions, consent.

Schema (``profiles.duckdb``; version in ``schema_version``, migrations in
:mod:`cmtoolkit.profiles.schema`):

- ``profiles(profile_id VARCHAR NOT NULL, created_at TIMESTAMP, updated_at TIMESTAMP,
  <one VARCHAR[] column per property>)``: the wide table. Every property is multi-valued: an
  ordered list of distinct non-empty strings, NULL when it has no values. ``profile_id`` is unique
  but carries no PRIMARY KEY (it made updates ~90x slower); every writer upserts by MERGE or
  anti-join on it, and loaders reject duplicate ids.
- ``property_definitions(name VARCHAR PRIMARY KEY, type VARCHAR, created_at TIMESTAMP)``, type one
  of text, number, date, datetime, email, boolean. Column names are the property names, quoted by
  :func:`quote_ident`; names are case-insensitive (DuckDB columns are).
- ``interactions(profile_id VARCHAR, interaction VARCHAR, viewed_at TIMESTAMP)``.
- ``segments(name VARCHAR PRIMARY KEY, definition_hash VARCHAR, size BIGINT,
  refreshed_at TIMESTAMP)`` and ``segment_members(segment VARCHAR, profile_id VARCHAR)``.
- Consent: properties ``consented_objectives`` / ``refused_objectives`` (text, predefined).

Set-based SQL for later engines: :data:`cmtoolkit.profiles.interactions.INTERACTION_NAMES_SQL`,
:func:`cmtoolkit.profiles.consent.consenting_profiles_sql`, ``segment_members``.
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
from cmtoolkit.profiles.segments import SegmentInfo, Segments, compile_rule
from cmtoolkit.profiles.store import Store

__all__ = [
    "PROPERTY_TYPES",
    "LoadResult",
    "SegmentInfo",
    "Segments",
    "Store",
    "compile_rule",
    "consent_condition",
    "consenting_profiles_sql",
    "consents",
    "create_consenting_table",
    "quote_ident",
]
