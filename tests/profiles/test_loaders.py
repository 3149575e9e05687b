from __future__ import annotations

import datetime as dt
import re
from pathlib import Path

import pandas as pd
import polars as pl
import pytest

from cmtoolkit.errors import LoadError

from .conftest import snapshot


def write(path: Path, text: str) -> Path:
    path.write_text(text, encoding="utf-8")
    return path


@pytest.fixture
def seeded(ws):
    """A store with two profiles and typed properties, so bad loads have something to break."""
    ws.store.set_values(
        pl.DataFrame(
            {
                "profile_id": ["p1", "p2"],
                "points": [5, 7],
                "email": ["a@example.com", "b@example.com"],
                "tags": [["x"], ["y", "z"]],
            }
        )
    )
    return ws


def test_csv_load_infers_types_splits_pipes_and_upserts(seeded, tmp_path):
    csv = write(
        tmp_path / "p.csv",
        "profile_id,points,tags,since,seen_at,vip,city,email\n"
        "p2,9,golf|tennis|golf,2025-01-31,2025-01-31 10:00:00,true,Paris,C@example.com\n"
        "p3,,,,,false,,\n",
    )
    result = seeded.store.load(csv)
    assert (result.rows, result.inserted, result.updated) == (2, 1, 1)
    props = seeded.store.properties()
    assert props["since"] == "date"
    assert props["seen_at"] == "datetime"
    assert props["vip"] == "boolean"
    assert props["city"] == "text"
    assert props["points"] == "number"  # existing keeps its type
    assert seeded.store.get("p2") == {
        "points": ["9"],
        "tags": ["golf", "tennis"],
        "email": ["C@example.com"],
        "since": ["2025-01-31"],
        "seen_at": ["2025-01-31 10:00:00"],
        "vip": ["true"],
        "city": ["Paris"],
    }
    # empty cells mean no value; a set load replaces, so p3 has only vip
    assert seeded.store.get("p3") == {"vip": ["false"]}
    assert seeded.store.get("p1")["tags"] == ["x"]  # other profiles untouched


def test_declared_types_and_id_column(ws, tmp_path):
    csv = write(tmp_path / "p.csv", "key,code,score\nk1,0042,1\nk2,7,2\n")
    ws.store.load(csv, id_column="key", types={"code": "text"})
    assert ws.store.properties()["code"] == "text"
    assert ws.store.properties()["score"] == "number"
    assert ws.store.get("k1") == {"code": ["0042"], "score": ["1"]}


def test_parquet_load(ws, tmp_path):
    path = tmp_path / "p.parquet"
    pl.DataFrame(
        {
            "profile_id": ["a", "b"],
            "points": [1.5, 2.0],
            "when": [dt.date(2025, 1, 2), None],
            "tags": [["u", "v", "u"], None],
        }
    ).write_parquet(path)
    result = ws.store.load(path)
    assert result.properties == {"points": "number", "when": "date", "tags": "text"}
    assert ws.store.get("a") == {"points": ["1.5"], "when": ["2025-01-02"], "tags": ["u", "v"]}
    assert ws.store.get("b") == {"points": ["2"]}


def test_pandas_and_polars_frames(ws):
    ws.store.set_values(pd.DataFrame({"profile_id": ["a"], "tags": [["t1", "t2"]], "n": [3]}))
    ws.store.set_values(pl.DataFrame({"profile_id": ["b"], "tags": ["single"], "n": [4]}))
    assert ws.store.get("a") == {"tags": ["t1", "t2"], "n": ["3"]}
    assert ws.store.get("b") == {"tags": ["single"], "n": ["4"]}


@pytest.mark.parametrize(
    ("text", "expected"),
    [
        # malformed: too many columns on line 3, unterminated quote on line 4
        ("profile_id,points\np9,1\np10,2,3\n", [(3, "malformed row")]),
        # a value that does not fit the typed property (points is number)
        ("profile_id,points\np9,1\np10,lots\np11,2\n", [(3, "'lots' is not a valid number")]),
        # duplicate ids
        (
            "profile_id,city\np9,a\np10,b\np9,c\n",
            [(4, "duplicate profile_id 'p9' (first on line 2)")],
        ),
        # empty id
        ("profile_id,city\np9,a\n,b\n", [(3, "empty 'profile_id'")]),
        # missing id column
        ("id,city\np9,a\n", [(None, "no id column 'profile_id'")]),
        # an email property with a non-email value
        ("profile_id,email\np9,x@example.com\np10,not an email\n", [(3, "is not a valid email")]),
    ],
)
def test_bad_csv_loads_nothing(seeded, tmp_path, text, expected):
    before = snapshot(seeded)
    with pytest.raises(LoadError) as info:
        seeded.store.load(write(tmp_path / "bad.csv", text))
    problems = info.value.problems
    for line, fragment in expected:
        assert any(p[0] == line and fragment in p[1] for p in problems), problems
    assert "nothing was loaded" in str(info.value)
    assert snapshot(seeded) == before


def test_bad_frame_and_parquet_report_rows(seeded, tmp_path):
    before = snapshot(seeded)
    frame = pl.DataFrame({"profile_id": ["n1", "n2", "n1"], "points": ["1", "x", "2"]})
    with pytest.raises(LoadError) as info:
        seeded.store.set_values(frame)
    assert (2, "'points': 'x' is not a valid number") in info.value.problems
    assert any(p[0] == 3 and "duplicate" in p[1] for p in info.value.problems)
    path = tmp_path / "bad.parquet"
    frame.write_parquet(path)
    with pytest.raises(LoadError, match="row 2"):
        seeded.store.load(path)
    assert snapshot(seeded) == before


def test_unknown_file_type_and_missing_file(ws, tmp_path):
    with pytest.raises(LoadError, match="unknown file type"):
        ws.store.load(write(tmp_path / "x.json", "{}"))
    with pytest.raises(LoadError, match="no such file"):
        ws.store.load(tmp_path / "missing.csv")


def test_declared_type_conflicts(seeded, tmp_path):
    before = snapshot(seeded)
    csv = write(tmp_path / "p.csv", "profile_id,points\np1,3\n")
    with pytest.raises(LoadError, match="keeps its type"):
        seeded.store.load(csv, types={"points": "text"})
    with pytest.raises(LoadError, match="no such column"):
        seeded.store.load(csv, types={"nothere": "text"})
    assert snapshot(seeded) == before


def test_mixed_inference_falls_back_to_text(ws):
    # the sample says number, the full column does not: inferred again over every row
    values = ["1"] * 10_050 + ["abc"]
    ids = [f"i{i}" for i in range(len(values))]
    ws.store.set_values(pl.DataFrame({"profile_id": ids, "code": values}))
    assert ws.store.properties()["code"] == "text"


def test_injection_in_values_and_ids_is_inert(ws, tmp_path):
    evil = "x'); DELETE FROM profiles; --"
    csv = write(tmp_path / "p.csv", f'profile_id,note\n"{evil}","{evil}|\'"""\n')
    ws.store.load(csv)
    assert ws.store.get(evil) == {"note": [evil, "'\""]}
    assert ws.store.count() == 1


def test_line_numbers_hold_in_a_large_csv(ws, tmp_path):
    lines = ["profile_id,points"] + [f"p{i},{i}" for i in range(60_000)]
    lines[45_001] = "p45000,oops"  # line 45002 of the file
    csv = write(tmp_path / "big.csv", "\n".join(lines) + "\n")
    with pytest.raises(LoadError) as info:
        ws.store.load(csv, types={"points": "number"})
    assert info.value.problems == [(45_002, "'points': 'oops' is not a valid number")]
    assert ws.store.count() == 0


@pytest.mark.parametrize(
    ("header", "expected"),
    [
        ("profile_id,,city", "line 1: column 2 has no name"),
        ("profile_id,city, ", "line 1: column 3 has no name"),
        ("profile_id,city,tier,city", "line 1: columns 2 and 4 are both named 'city'"),
        ("profile_id,_cm_row", "line 1: column 2: the name '_cm_row' is reserved"),
        ("profile_id," + ",".join(f"c{i}" for i in range(5000)), "5,001 columns"),
    ],
)
def test_a_csv_header_is_checked_before_duckdb_reads_the_file(seeded, tmp_path, header, expected):
    """DuckDB would rename an empty name column1 and a repeat city_1 without a word."""
    before = snapshot(seeded)
    path = write(tmp_path / "h.csv", header + "\np9" + "," * header.count(",") + "\n")
    with pytest.raises(LoadError, match=re.escape(expected)):
        seeded.store.load(path)
    assert snapshot(seeded) == before


def test_ids_with_control_characters_and_overlong_lines(seeded, tmp_path, monkeypatch):
    before = snapshot(seeded)
    nul = write(tmp_path / "nul.csv", "profile_id,city\np8,a\np2\0,b\np9\t,c\n")
    with pytest.raises(LoadError) as info:
        seeded.store.load(nul)
    assert [line for line, _ in info.value.problems] == [3, 4]
    assert "control character" in str(info.value)
    long = write(tmp_path / "long.csv", "profile_id,note\np8," + "x" * 3_000_000 + "\n")
    seeded.store.load(long)  # past DuckDB's 2 MB default
    monkeypatch.setattr("cmtoolkit.profiles.sources.MAX_LINE_BYTES", 1 << 20)
    with pytest.raises(LoadError, match="a line is longer than 1 MB") as info:
        seeded.store.load(long)
    assert len(str(info.value)) < 400  # not an echo of the line
    assert snapshot(seeded) != before  # only the one good load changed it
