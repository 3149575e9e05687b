from __future__ import annotations

import duckdb
import pandas as pd
import polars as pl
import pytest

from cmtoolkit import Workspace
from cmtoolkit.errors import ConfigurationError, SchemaError
from cmtoolkit.profiles import schema
from cmtoolkit.profiles.quoting import quote_ident
from cmtoolkit.profiles.schema import Migration
from cmtoolkit.profiles.store import Store
from cmtoolkit.sync.ledger_schema import LEDGER_MIGRATIONS


def test_workspace_layout_and_lazy_creation(tmp_path):
    ws = Workspace(tmp_path / "w")
    assert ws.store.count() == 0  # reading a missing store creates nothing
    assert not ws.path.exists()
    with pytest.raises(ConfigurationError, match="does not exist"):
        Workspace.open(tmp_path / "w")
    created = Workspace.create(tmp_path / "w")
    assert created.database_path.is_file()
    assert created.segments_path.is_file()
    assert created.connections_dir.is_dir() and created.reports_dir.is_dir()
    store = Workspace.open(tmp_path / "w").store
    assert store.schema_version() == schema.latest_version(store.migrations)


def test_first_write_creates_the_store(ws):
    ws.store.define_property("points", "number")
    assert ws.database_path.is_file()
    assert ws.store.properties()["points"] == "number"
    assert ws.store.define_property("points", "number") is False
    with pytest.raises(ConfigurationError, match="keeps its type"):
        ws.store.define_property("points", "text")
    with pytest.raises(ConfigurationError, match="case-insensitive"):
        ws.store.define_property("Points", "number")
    with pytest.raises(ConfigurationError, match="unknown property type"):
        ws.store.define_property("x", "money")
    with pytest.raises(ConfigurationError, match="empty"):
        ws.store.define_property("  ", "text")
    with pytest.raises(ConfigurationError, match="reserved"):
        ws.store.define_property("profile_id", "text")


def test_appended_migration_runs_once_on_write_open(ws, monkeypatch):
    ws.store.count()
    with ws.store.connect(write=True):
        pass
    extra = Migration(
        schema.latest_version(ws.store.migrations) + 1,
        "test ledger",
        ("CREATE TABLE test_ledger (run_id VARCHAR)", "INSERT INTO test_ledger VALUES ('r1')"),
    )
    monkeypatch.setattr(schema, "MIGRATIONS", [*schema.MIGRATIONS, extra])
    with ws.store.connect(write=True) as con:
        assert con.execute("SELECT * FROM test_ledger").fetchall() == [("r1",)]
    with ws.store.connect(write=True) as con:  # not applied twice
        assert con.execute("SELECT count(*) FROM test_ledger").fetchall() == [(1,)]
    assert ws.store.schema_version() == extra.version


def test_the_ledger_tables_come_from_the_sync_package_as_migration_2(ws):
    """The ledger's DDL lives in cmtoolkit.sync; a workspace's store applies it as version 2."""
    ledger_versions = [m.version for m in LEDGER_MIGRATIONS]
    assert ledger_versions[0] == 2 and ledger_versions == sorted(set(ledger_versions))
    assert [m.version for m in schema.MIGRATIONS] == [1]
    with ws.store.connect(write=True) as con:
        versions = con.execute("SELECT version FROM schema_version ORDER BY 1").fetchall()
        tables = {r[0] for r in con.execute("SELECT table_name FROM duckdb_tables()").fetchall()}
    assert versions == [(1,), *((v,) for v in ledger_versions)]
    assert {"runs", "run_rows", "import_state", "export_state", "profiles"} <= tables


def test_a_store_made_before_the_ledger_moved_opens_unchanged(tmp_path):
    """Workspaces recorded versions 1 and 2 when both lived in profiles.schema: same rows,
    same tables, nothing applied again."""
    ws = Workspace(tmp_path / "old")
    ws.path.mkdir()
    con = duckdb.connect(str(ws.database_path))
    schema.migrate(con, migrations=[*schema.MIGRATIONS, *LEDGER_MIGRATIONS])
    con.execute("INSERT INTO runs (run_id, connection, goal, started_at, state)"
                " VALUES ('r1', 'news', 'import', now(), 'FINISHED')")  # fmt: skip
    before = con.execute("SELECT * FROM schema_version ORDER BY version").fetchall()
    con.close()
    with ws.store.connect(write=True) as con:
        assert con.execute("SELECT * FROM schema_version ORDER BY version").fetchall() == before
        assert con.execute("SELECT run_id FROM runs").fetchall() == [("r1",)]
    assert ws.store.count() == 0


def test_a_store_that_lacks_the_ledger_gets_it_on_the_next_open(tmp_path, monkeypatch):
    """A file made by the profile store alone catches up when a workspace opens it, even when a
    later profile migration was applied first: every known version not recorded is applied."""
    later = Migration(90, "a later profile table", ("CREATE TABLE later (x INTEGER)",))
    monkeypatch.setattr(schema, "MIGRATIONS", [*schema.MIGRATIONS, later])
    path = tmp_path / "ws" / "profiles.duckdb"
    Store(path).define_property("points", "number")
    with Store(path).connect() as con:
        assert schema.applied_versions(con) == {1, 90}
    ws = Workspace(tmp_path / "ws")
    assert ws.store.properties()["points"] == "number"  # a read brings it up to date
    with ws.store.connect() as con:
        ledger = {m.version for m in LEDGER_MIGRATIONS}
        assert schema.applied_versions(con) == {1, 90, *ledger}
        assert con.execute("SELECT count(*) FROM runs").fetchall() == [(0,)]


def test_newer_store_is_refused(ws):
    with ws.store.connect(write=True) as con:
        con.execute("INSERT INTO schema_version (version, description) VALUES (999, 'future')")
    with pytest.raises(SchemaError, match="upgrade cmtoolkit"):
        ws.store.count()
    with pytest.raises(SchemaError), ws.store.connect(write=True):
        pass


def test_transaction_rolls_back(ws):
    ws.store.set_values(pl.DataFrame({"profile_id": ["a"], "tier": ["gold"]}))
    with pytest.raises(RuntimeError), ws.store.transaction() as con:
        con.execute("DELETE FROM profiles")
        raise RuntimeError("boom")
    assert ws.store.count() == 1


def test_deleted_rows_are_vacuumed_once_they_outnumber_the_live_ones(ws):
    """A checkpoint that vacuums rewrites every row group holding deleted rows, whatever the
    write's size (2 s at a million profiles). The store's checkpoints keep deleted rows until
    they outnumber the live ones, then vacuum, through connect() and attached() alike."""
    n = 250_000  # a few of DuckDB's row groups, which vacuuming merges
    ws.store.load(pl.DataFrame({"profile_id": [f"p{i}" for i in range(n)], "tier": ["a"] * n}))

    def live_and_stored() -> tuple[int, int]:
        with ws.store.connect() as con:
            return con.execute(
                "SELECT count(*), (SELECT estimated_size FROM duckdb_tables() "
                "WHERE table_name = 'profiles') FROM profiles"
            ).fetchone()

    # Updating a list column deletes the row and inserts it again: 5 % of every row group.
    with ws.store.transaction() as con:
        con.execute("UPDATE profiles SET tier = ['b'] WHERE hash(profile_id) % 20 = 0")
    live, stored = live_and_stored()
    assert live == n and stored > 1.04 * n  # the deleted rows are kept
    with duckdb.connect() as con, ws.store.attached(con, write=True):
        con.execute("DELETE FROM profiles WHERE hash(profile_id) % 10 BETWEEN 1 AND 6")
    live, stored = live_and_stored()
    assert live < 0.45 * n and stored == live  # more deleted rows than live ones: vacuumed
    assert ws.store.count() == live


def test_get_find_set_add_delete_stats(ws):
    frame = pd.DataFrame(
        {
            "profile_id": ["a", "b", "c"],
            "email": [" Ann@Example.com ", "bob@example.org", None],
            "tags": [["x", "y", "x", ""], [], None],
            "points": [10, 20, None],
        }
    )
    ws.store.set_values(frame)
    assert ws.store.properties()["email"] == "email"
    assert ws.store.properties()["points"] == "number"
    assert ws.store.get("a") == {
        "email": [" Ann@Example.com "],
        "tags": ["x", "y"],
        "points": ["10"],
    }
    assert ws.store.get("c") == {}
    assert ws.store.get("nope") is None
    assert ws.store.find("email", "ann@example.COM") == ["a"]
    assert ws.store.find("tags", "y") == ["a"]
    assert ws.store.find("tags", "Y") == []  # text is exact
    with pytest.raises(ConfigurationError, match="unknown property"):
        ws.store.find("nope", "x")

    ws.store.set_values(
        pl.DataFrame({"profile_id": ["a", "d"], "tags": [["z", "x"], ["q"]]}), "add"
    )
    assert ws.store.get("a")["tags"] == ["x", "y", "z"]
    assert ws.store.get("d") == {"tags": ["q"]}
    ws.store.set_values(pl.DataFrame({"profile_id": ["a"], "tags": [["w"]]}), mode="set")
    assert ws.store.get("a")["tags"] == ["w"]
    assert ws.store.get("a")["points"] == ["10"]  # columns not loaded are untouched

    stats = ws.store.stats()
    assert stats["profiles"] == 4
    assert stats["properties"]["tags"] == {"type": "text", "profiles_with_values": 2}
    assert ws.store.delete_profiles(["a", "zzz"]) == 1
    assert ws.store.count() == 3 and ws.store.get("a") is None


def test_quote_ident_makes_injection_inert(ws):
    evil = 'x" VARCHAR[]); DROP TABLE profiles; --'
    assert quote_ident('a"b') == '"a""b"'
    ws.store.set_values(pl.DataFrame({"profile_id": ["p1"], evil: ["'); DROP TABLE profiles; --"]}))
    assert ws.store.get("p1") == {evil: ["'); DROP TABLE profiles; --"]}
    assert ws.store.find(evil, "'); DROP TABLE profiles; --") == ["p1"]
    assert ws.store.find(evil, "' OR '1'='1") == []
    assert ws.store.get("' OR '1'='1") is None
    with ws.store.connect() as con:
        tables = {r[0] for r in con.execute("SELECT table_name FROM duckdb_tables()").fetchall()}
    assert {"profiles", "property_definitions"} <= tables
    assert ws.store.count() == 1


def test_unicode_and_spaces_in_property_names(ws):
    ws.store.set_values(pl.DataFrame({"profile_id": ["p"], "Lieblings Café ☕": ["ja"]}))
    assert ws.store.get("p") == {"Lieblings Café ☕": ["ja"]}


def test_in_process_reader_while_writer_open(ws):
    ws.store.define_property("t", "text")
    with ws.store.connect(write=True) as con:
        con.execute(
            "INSERT INTO profiles (profile_id, created_at, updated_at) VALUES ('x', now(), now())"
        )
        assert ws.store.count() == 1  # a nested reader shares the open instance
    assert isinstance(duckdb.__version__, str)
