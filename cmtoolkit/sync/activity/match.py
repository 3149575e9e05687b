"""Matching staged events to profiles through the import's email identifier (DESIGN §5.1: the
import stage's ``email_key`` macro, so both sides are normalised the same way), with consent.

An address held by exactly one profile matches; by none: unmatched; by two or more: ambiguous
(skipped, as the import skips such a contact). With objectives, a profile that consented to none
of them gets no events (``consent_mismatch``). Each distinct address is keyed once
(``activity_addresses``); the events themselves are joined to their owner by its number.
"""

from __future__ import annotations

from collections.abc import Sequence

from cmtoolkit.profiles.consent import consent_predicate
from cmtoolkit.profiles.quoting import quote_ident
from cmtoolkit.sync.activity.read import (
    ADDRESSES_TABLE,
    DETAILS_TABLE,
    RAW_TABLE,
    SELECTIONS_TABLE,
)
from cmtoolkit.sync.statement import Statement

OWNER_TABLE = "activity_owner"
#: the new events as keys: (profile_id, sel, at, did)
NEW_KEYS_TABLE = "activity_new_keys"
#: the same as email_events rows (a view over the keys)
NEW_TABLE = "activity_new"

NEW_VIEW = f"""CREATE OR REPLACE TEMP VIEW {NEW_TABLE} AS
    SELECT n.profile_id, s.campaign_id, s.campaign, s.event, n."at", d.detail
    FROM {NEW_KEYS_TABLE} AS n JOIN {SELECTIONS_TABLE} AS s USING (sel)
    JOIN {DETAILS_TABLE} AS d USING (did)"""


def match_statements(email_property: str | None, objectives: Sequence[str]) -> list[Statement]:
    """Build ``activity_owner`` (address number → its profile, whether another profile holds
    it too (``shared``: ambiguous), whether that profile consented) and the new
    events (matched, distinct, not yet in ``email_events``) as ``activity_new_keys`` and the
    view ``activity_new``. No ``email_property`` (a store without it yet): nothing matches."""
    if email_property is None:
        owner = f"""CREATE OR REPLACE TEMP TABLE {OWNER_TABLE} (eid INTEGER,
            profile_id VARCHAR, shared BOOLEAN, consents BOOLEAN)"""
        new = f"""CREATE OR REPLACE TEMP TABLE {NEW_KEYS_TABLE} (profile_id VARCHAR,
            sel INTEGER, "at" TIMESTAMP, did INTEGER)"""
        return [Statement(owner), Statement(new), Statement(NEW_VIEW)]
    prop = quote_ident(email_property)
    consent = consent_predicate("p", "$objectives") if objectives else "true"
    params = {"objectives": list(objectives)} if objectives else {}
    return [
        Statement(
            f"""CREATE OR REPLACE TEMP TABLE {OWNER_TABLE} AS
            SELECT a.eid, min(p.profile_id) AS profile_id,
                   min(p.profile_id) <> max(p.profile_id) AS shared,
                   bool_and(p.consents) AS consents
            FROM (SELECT eid, email_key(email) AS k FROM {ADDRESSES_TABLE}) AS a
            JOIN (SELECT profile_id, email_key(unnest({prop})) AS k, {consent} AS consents
                  FROM profiles AS p WHERE {prop} IS NOT NULL) AS p ON p.k = a.k
            GROUP BY a.eid""",
            params,
        ),
        # One (campaign, event) is one selection and one detail one number, so the event's
        # keys stand for the whole event (profile_id, campaign_id, event, at, detail). Only
        # stored events of a campaign read, from its earliest event read on, can be the same
        # event again (the lag window's overlap): the anti-join builds on those alone.
        Statement(
            f"""CREATE OR REPLACE TEMP TABLE {NEW_KEYS_TABLE} AS
            WITH candidate AS (
                SELECT DISTINCT o.profile_id, r.sel, r."at", r.did
                FROM {RAW_TABLE} AS r JOIN {OWNER_TABLE} AS o USING (eid)
                WHERE NOT o.shared AND o.consents AND r."at" IS NOT NULL),
            bounds AS (
                SELECT s.campaign_id, min(r.lo) AS lo
                FROM (SELECT sel, min("at") AS lo FROM {RAW_TABLE} GROUP BY sel) AS r
                JOIN {SELECTIONS_TABLE} AS s USING (sel) GROUP BY s.campaign_id),
            stored AS (
                SELECT e.profile_id, s.sel, e."at", d.did
                FROM email_events AS e
                JOIN bounds AS b ON e.campaign_id = b.campaign_id AND e."at" >= b.lo
                JOIN {SELECTIONS_TABLE} AS s
                  ON s.campaign_id = e.campaign_id AND s.event = e.event
                JOIN {DETAILS_TABLE} AS d ON d.detail = e.detail)
            SELECT c.* FROM candidate AS c ANTI JOIN stored AS x
              ON x.profile_id = c.profile_id AND x.sel = c.sel AND x."at" = c."at"
             AND x.did = c.did"""
        ),
        Statement(NEW_VIEW),
    ]


COUNTS_SQL = f"""
    SELECT count(*) AS read,
           count(*) FILTER (WHERE NOT o.shared AND o.consents) AS matched,
           count(*) FILTER (WHERE o.shared IS NULL) AS unmatched,
           count(*) FILTER (WHERE o.shared) AS ambiguous,
           count(*) FILTER (WHERE NOT o.shared AND NOT o.consents) AS consent_mismatch
    FROM {RAW_TABLE} AS r LEFT JOIN {OWNER_TABLE} AS o USING (eid)"""
