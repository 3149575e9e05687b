"""The sample data in ``data/`` loads through the real CLI exactly as ``data/README.md`` says.

The README's commands run verbatim (only ``cmtoolkit`` becomes the installed script) in a
temporary folder holding a copy of ``data/``; the segment sizes must be what the README prints and
what the segment rules give when evaluated by hand over the CSV, so the data, its README and
``segments.yaml`` cannot drift apart.
"""

from __future__ import annotations

import csv
import json
import re
import shlex
import shutil
import subprocess
import sys
from collections.abc import Callable
from pathlib import Path

import pytest

from cmtoolkit import Workspace

ROOT = Path(__file__).resolve().parents[1]
DATA = ROOT / "data"
README = DATA / "README.md"
SCRIPT = Path(sys.executable).with_name("cmtoolkit")
WORKSPACE = "sample"  # the folder the README's commands load into

EXPECTED_SIZES = {
    "newsletter_optin": 118,
    "vip": 83,
    "churn_risk": 87,
    "music_lovers": 22,
    "imported_list": 12,
}


def _blocks() -> list[tuple[str, str]]:
    """The fenced blocks of data/README.md: (info string, body)."""
    blocks: list[tuple[str, str]] = []
    info: str | None = None
    body: list[str] = []
    for line in README.read_text(encoding="utf-8").splitlines(keepends=True):
        if line.startswith("```"):
            if info is None:
                info, body = line[3:].strip(), []
            else:
                blocks.append((info, "".join(body)))
                info = None
        elif info is not None:
            body.append(line)
    return blocks


def _readme_commands() -> list[list[str]]:
    """The first ``sh`` block of data/README.md: one command per line, comments dropped."""
    first = next(body for info, body in _blocks() if info == "sh")
    return [shlex.split(line, comments=True) for line in first.splitlines()]


def _run(argv: list[str], cwd: Path) -> str:
    if argv[0] == "cmtoolkit":
        argv = [str(SCRIPT), *argv[1:]]
    done = subprocess.run(argv, cwd=cwd, capture_output=True, text=True, timeout=300, check=False)
    assert done.returncode == 0, f"{shlex.join(argv)} failed:\n{done.stdout}{done.stderr}"
    assert "Traceback" not in done.stderr
    return done.stdout


@pytest.fixture(scope="module")
def loaded(tmp_path_factory: pytest.TempPathFactory) -> tuple[Path, list[str]]:
    """A folder where the README's commands ran; the outputs of each command."""
    folder = tmp_path_factory.mktemp("sample")
    shutil.copytree(DATA, folder / "data")
    outputs = [_run(argv, folder) for argv in _readme_commands() if argv]
    return folder, outputs


def _profiles() -> list[dict[str, str]]:
    with (DATA / "profiles.csv").open(encoding="utf-8", newline="") as handle:
        return list(csv.DictReader(handle))


def _values(cell: str) -> list[str]:
    return [v for v in cell.split("|") if v]


def _by_hand() -> dict[str, set[str]]:
    """Each segment of data/segments.yaml evaluated over profiles.csv in plain Python."""
    rows = _profiles()
    with (DATA / "vip_ids.csv").open(encoding="utf-8") as handle:
        listed = {line.strip() for line in handle if line.strip() not in ("", "profile_id")}

    def consents(row: dict[str, str], objective: str) -> bool:
        """As profiles.consent: a refusal of the same objective wins over a consent."""
        return objective in _values(row["consented_objectives"]) and objective not in _values(
            row["refused_objectives"]
        )

    def members(keep: Callable[[dict[str, str]], bool]) -> set[str]:
        return {r["profile_id"] for r in rows if keep(r)}

    return {
        "newsletter_optin": members(
            lambda r: r["newsletter"] == "yes" and consents(r, "email_marketing")
        ),
        "vip": members(lambda r: float(r["points"]) >= 1000 or r["tier"] in ("gold", "platinum")),
        "churn_risk": members(lambda r: not (r["last_order"] and r["last_order"] > "2026-06-01")),
        "music_lovers": members(
            lambda r: (
                "music" in _values(r["interests"])
                and r["country"] in ("Germany", "Netherlands", "France")
            )
        ),
        "imported_list": listed & {r["profile_id"] for r in rows},
    }


def test_the_readme_loads_profiles_interactions_and_segments(
    loaded: tuple[Path, list[str]],
) -> None:
    folder, _ = loaded
    stats = json.loads(
        _run(["cmtoolkit", "profiles", "stats", "--workspace", WORKSPACE, "--json"], folder)
    )
    assert stats["profiles"] == 300
    assert stats["interactions"] == 613
    assert stats["properties"]["points"]["type"] == "number"
    assert stats["properties"]["last_order"]["type"] == "date"
    assert stats["properties"]["email"]["type"] == "email"
    assert stats["segments"] == EXPECTED_SIZES


def test_segment_sizes_are_the_readmes_and_none_is_empty(loaded: tuple[Path, list[str]]) -> None:
    folder, outputs = loaded
    listed = json.loads(
        _run(["cmtoolkit", "segments", "list", "--workspace", WORKSPACE, "--json"], folder)
    )
    sizes = {s["name"]: s["size"] for s in listed}
    assert sizes == EXPECTED_SIZES
    assert all(size > 0 for size in sizes.values())
    assert not any(s["stale"] for s in listed)
    # What the README shows the refresh printing is what it printed.
    printed = next(body for info, body in _blocks() if not info and "members" in body)
    assert outputs[-1] == printed


def test_segment_members_are_what_the_rules_say(loaded: tuple[Path, list[str]]) -> None:
    folder, _ = loaded
    segments = Workspace(folder / WORKSPACE).segments
    for name, expected in _by_hand().items():
        assert set(segments.members(name)) == expected, name


def test_sample_files_are_plausible() -> None:
    rows = _profiles()
    assert len(rows) == 300
    assert len({r["profile_id"] for r in rows}) == 300
    assert len({r["email"].casefold() for r in rows}) == 300
    assert all(re.fullmatch(r"[a-z0-9.]+@[a-z.]*example\.(com|org|net)", r["email"]) for r in rows)
    consented = sum("email_marketing" in _values(r["consented_objectives"]) for r in rows)
    assert consented > len(rows) / 2
    assert any(len(_values(r["interests"])) > 1 for r in rows)
    ids = {r["profile_id"] for r in rows}
    with (DATA / "interactions.csv").open(encoding="utf-8", newline="") as handle:
        interactions = list(csv.DictReader(handle))
    assert len(interactions) == 613
    assert {i["profile_id"] for i in interactions} <= ids
