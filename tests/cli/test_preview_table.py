"""``cmtoolkit preview`` prints a readable table: full values, thousands separators, no frame."""

from __future__ import annotations

from cmtoolkit.cli import main
from cmtoolkit.cli.sync import text_table
from tests.widgets.env import prepare


def test_preview_prints_a_table_not_a_frame(
    emulator_factory, cm_factory, tmp_path, monkeypatch, capsys
):
    setup = prepare(emulator_factory, cm_factory, tmp_path, monkeypatch)
    argv = ["preview", "demo", "--goal", "export", "--workspace", str(setup.ws.path)]
    assert main(argv) == 0
    out = capsys.readouterr().out
    assert "shape:" not in out and "┌" not in out and "…" not in out
    lines = out.splitlines()
    assert lines[0].startswith("export preview of demo: ")
    header = lines[1].split()
    assert "outcome" in header and set(lines[2]) <= {"-", " "}
    assert any("ann@example.com" in line for line in lines[3:])


def test_text_table_aligns_and_formats_every_value():
    text = text_table(
        [
            {"profile_id": "p" + "0" * 40, "points": 1234567, "tags": ["a", "b"], "x": None},
            {"profile_id": "p2", "points": 5, "tags": [], "x": True},
        ]
    )
    head, rule, first, second = text.splitlines()
    assert set(rule) == {"-", " "}
    assert head.split() == ["profile_id", "points", "tags", "x"]
    assert first.startswith("p" + "0" * 40) and "1,234,567" in first and "a, b" in first
    assert first.index("1,234,567") + len("1,234,567") == second.index("5") + 1  # right-aligned
    assert second.rstrip().endswith("yes") and "—" in first
