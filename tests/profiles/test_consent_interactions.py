from __future__ import annotations

import datetime as dt

import polars as pl
import pytest

from cmtoolkit.errors import LoadError
from cmtoolkit.profiles.consent import (
    consenting_profiles_sql,
    consents,
    create_consenting_table,
)
from cmtoolkit.profiles.interactions import INTERACTION_NAMES_SQL

from .conftest import snapshot


@pytest.fixture
def consent_ws(ws):
    ws.store.set_values(
        pl.DataFrame(
            {
                "profile_id": ["both", "mkt", "refused", "none", "analytics"],
                "consented_objectives": [
                    ["email_marketing", "analytics"],
                    ["email_marketing"],
                    ["email_marketing"],
                    None,
                    ["analytics"],
                ],
                "refused_objectives": [None, None, ["email_marketing"], ["analytics"], None],
            }
        )
    )
    return ws


def test_consenting_profiles_refusal_wins(consent_ws):
    with consent_ws.store.connect() as con:
        sql, params = consenting_profiles_sql(["email_marketing"])
        assert sorted(r[0] for r in con.execute(sql, params).fetchall()) == ["both", "mkt"]
        sql, params = consenting_profiles_sql(["email_marketing", "analytics"])
        got = sorted(r[0] for r in con.execute(sql, params).fetchall())
        assert got == ["analytics", "both", "mkt"]
        sql, params = consenting_profiles_sql([])  # no objectives: everyone
        assert len(con.execute(sql, params).fetchall()) == 5
        name = create_consenting_table(con, ["analytics"], name="ok")
        rows = con.execute(f"SELECT profile_id FROM {name} ORDER BY 1").fetchall()
        assert rows == [("analytics",), ("both",)]


def test_consents_in_python_matches_sql():
    assert consents(["a", "b"], ["a"], ["a"]) is False
    assert consents(["a", "b"], ["a"], ["a", "b"]) is True
    assert consents(None, None, []) is True
    assert consents(None, None, ["a"]) is False


def test_interactions_load_and_names(ws, tmp_path):
    csv = tmp_path / "i.csv"
    csv.write_text(
        "profile_id,interaction,viewed_at\n"
        "p1,pricing,2025-01-02 10:00:00\n"
        "p1,home,2025-01-03T11:00:00\n"
        "p1,pricing,2025-02-02 10:00:00\n"
        "p2,home,2025-01-02\n"
    )
    assert ws.store.load_interactions(csv) == 4
    assert ws.store.load_interactions(csv) == 0  # idempotent
    frame = pl.DataFrame(
        {
            "profile_id": ["p2"],
            "interaction": ["checkout"],
            "viewed_at": [dt.datetime(2025, 3, 1, 9)],
        }
    )
    assert ws.store.load_interactions(frame) == 1
    assert ws.store.interaction_names("p1") == ["home", "pricing"]
    assert ws.store.interaction_names("nobody") == []
    with ws.store.connect() as con:
        rows = con.execute(INTERACTION_NAMES_SQL + " ORDER BY profile_id").fetchall()
    assert rows == [("p1", ["home", "pricing"]), ("p2", ["checkout", "home"])]


@pytest.mark.parametrize(
    ("text", "fragment"),
    [
        ("profile_id,interaction,viewed_at\np1,home,yesterday\n", "line 2: viewed_at 'yesterday'"),
        ("profile_id,interaction,viewed_at\np1,home,2025-01-01\n,home,2025-01-01\n", "line 3"),
        ("profile_id,interaction\np1,home\n", "columns must be"),
        ("profile_id,interaction,viewed_at\np1,home,2025-01-01,x\n", "malformed row"),
    ],
)
def test_bad_interactions_load_nothing(ws, tmp_path, text, fragment):
    ok = tmp_path / "ok.csv"
    ok.write_text("profile_id,interaction,viewed_at\np0,home,2025-01-01\n")
    ws.store.load_interactions(ok)
    before = snapshot(ws)
    bad = tmp_path / "bad.csv"
    bad.write_text(text)
    with pytest.raises(LoadError, match=fragment):
        ws.store.load_interactions(bad)
    assert snapshot(ws) == before
