from __future__ import annotations

import json

import pytest

from cmtoolkit.cli import main


@pytest.fixture
def cli(tmp_path, capsys):
    workspace = str(tmp_path / "ws")

    def run(*args: str) -> tuple[int, str, str]:
        code = main([*args, "--workspace", workspace])
        out, err = capsys.readouterr()
        return code, out, err

    return run


def test_load_show_find_stats(cli, tmp_path):
    csv = tmp_path / "p.csv"
    csv.write_text("id,email,points,tags\na1, Ann@Example.com ,10,x|y\na2,bob@example.org,12,\n")
    code, out, _ = cli("profiles", "load", str(csv), "--id-column", "id", "--type", "points=text")
    assert code == 0 and "loaded 2 profiles (2 new, 0 updated)" in out
    code, out, _ = cli("profiles", "show", "a1", "--json")
    assert json.loads(out)["properties"]["tags"] == ["x", "y"]
    code, out, _ = cli("profiles", "show", "a1")
    assert "tags: x | y" in out
    assert cli("profiles", "show", "zz")[0] == 1
    code, out, _ = cli("profiles", "find", "email", "ANN@example.com", "--json")
    assert json.loads(out)["profile_ids"] == ["a1"]
    code, out, _ = cli("profiles", "stats", "--json")
    stats = json.loads(out)
    assert stats["profiles"] == 2 and stats["properties"]["points"]["type"] == "text"
    assert cli("profiles", "stats")[1].startswith("2 profiles")


def test_errors_exit_2_with_message(cli, tmp_path):
    bad = tmp_path / "bad.csv"
    bad.write_text("profile_id,points\np1,1\np1,2\n")
    code, _, err = cli("profiles", "load", str(bad))
    assert code == 2 and "line 3: duplicate profile_id 'p1'" in err
    code, _, err = cli("profiles", "load", str(bad), "--type", "points")
    assert code == 2 and "PROPERTY=TYPE" in err
    code, _, err = cli("profiles", "find", "nope", "x")
    assert code == 2 and "unknown property 'nope'" in err


def test_generate_segments_interactions(cli, tmp_path):
    code, out, _ = cli("profiles", "generate", "--size", "500", "--seed", "2", "--json")
    summary = json.loads(out)
    assert code == 0 and summary["profiles"] == 500 and summary["interactions"] > 0
    code, out, _ = cli("segments", "list", "--json")
    assert {s["name"] for s in json.loads(out)} >= {"newsletter_optin", "vip", "churn_risk"}
    assert all(s["size"] is None for s in json.loads(out))
    code, out, _ = cli("segments", "refresh", "vip", "--json")
    [vip] = json.loads(out)
    assert vip["name"] == "vip" and 0 < vip["size"] < 500
    code, out, _ = cli("segments", "refresh")
    assert "newsletter_optin [rules]:" in out and "members" in out
    out_file = tmp_path / "gen.parquet"
    code, out, _ = cli("profiles", "generate", "--size", "100", "--out", str(out_file))
    assert code == 0 and out_file.is_file()
    interactions = tmp_path / "i.csv"
    interactions.write_text("profile_id,interaction,viewed_at\np00000001,home,2025-05-01\n")
    code, out, _ = cli("interactions", "load", str(interactions), "--json")
    assert json.loads(out) == {"added": 1}
    code, out, _ = cli("profiles", "stats", "--json")
    assert json.loads(out)["segments"]["vip"] == vip["size"]
