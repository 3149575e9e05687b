"""Matching staged events to profiles through the import's email identifier (DESIGN §5.1: the
import stage's ``email_key`` macro, so both sides are normalised the same way), with consent.

An address held by exactly one profile matches; by none: unmatched; by two or more: ambiguous
(skipped, as the import skips such a contact). With objectives, a profile that consented to none
of them gets no events (``consent_mismatch``).
"""

from __future__ import annotations

from collections.abc import Sequence

from cmtoolkit.profiles.consent import consent_predicate
from cmtoolkit.profiles.quoting import quote_ident
from cmtoolkit.sync.activity.read import READ_TABLE
from cmtoolkit.sync.statement import Statement

OWNER_TABLE = "activity_owner"
NEW_TABLE = "activity_new"


def match_statements(email_property: str | None, objectives: Sequence[str]) -> list[Statement]:
    """Build ``activity_owner`` (email → its one profile, or why none) and ``activity_new``
    (matched events not yet in ``email_events``). No ``email_property`` (a store without it
    yet): nothing matches."""
    if email_property is None:
        return [
            Statement(
                f"""CREATE OR REPLACE TEMP TABLE {OWNER_TABLE} (email VARCHAR,
                profile_id VARCHAR, owners BIGINT, consents BOOLEAN)"""
            ),
            Statement(
                f"""CREATE OR REPLACE TEMP TABLE {NEW_TABLE} AS SELECT * FROM email_events
                LIMIT 0"""
            ),
        ]
    prop = quote_ident(email_property)
    consent = consent_predicate("p", "$objectives") if objectives else "true"
    params = {"objectives": list(objectives)} if objectives else {}
    return [
        Statement(
            f"""CREATE OR REPLACE TEMP TABLE activity_emails AS
            SELECT email, email_key(email) AS k FROM (SELECT DISTINCT email FROM {READ_TABLE})"""
        ),
        Statement(
            f"""CREATE OR REPLACE TEMP TABLE {OWNER_TABLE} AS
            SELECT e.email, min(p.profile_id) AS profile_id,
                   count(DISTINCT p.profile_id) AS owners, bool_and(p.consents) AS consents
            FROM activity_emails AS e
            JOIN (SELECT profile_id, email_key(unnest({prop})) AS k, {consent} AS consents
                  FROM profiles AS p WHERE {prop} IS NOT NULL) AS p ON p.k = e.k
            GROUP BY e.email""",
            params,
        ),
        # Only stored events of a campaign read, from its earliest event read on, can be the
        # same event again (the lag window's overlap): the anti-join builds on those alone.
        Statement(
            f"""CREATE OR REPLACE TEMP TABLE {NEW_TABLE} AS
            WITH candidate AS (
                SELECT DISTINCT o.profile_id, r.campaign_id, r.campaign, r.event, r."at",
                       coalesce(r.detail, '') AS detail
                FROM {READ_TABLE} AS r JOIN {OWNER_TABLE} AS o USING (email)
                WHERE o.owners = 1 AND o.consents AND r."at" IS NOT NULL),
            bounds AS (
                SELECT campaign_id, min("at") AS lo FROM {READ_TABLE} GROUP BY campaign_id),
            stored AS (
                SELECT e.profile_id, e.campaign_id, e.event, e."at", e.detail
                FROM email_events AS e JOIN bounds AS b
                  ON e.campaign_id = b.campaign_id AND e."at" >= b.lo)
            SELECT c.* FROM candidate AS c ANTI JOIN stored AS x
              ON x.profile_id = c.profile_id AND x.campaign_id = c.campaign_id
             AND x.event = c.event AND x."at" = c."at" AND x.detail = c.detail"""
        ),
    ]


COUNTS_SQL = f"""
    SELECT count(*) AS read,
           count(*) FILTER (WHERE o.owners = 1 AND o.consents) AS matched,
           count(*) FILTER (WHERE o.owners IS NULL) AS unmatched,
           count(*) FILTER (WHERE o.owners > 1) AS ambiguous,
           count(*) FILTER (WHERE o.owners = 1 AND NOT o.consents) AS consent_mismatch
    FROM {READ_TABLE} AS r LEFT JOIN {OWNER_TABLE} AS o USING (email)"""
