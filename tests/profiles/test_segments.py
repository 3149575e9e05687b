from __future__ import annotations

import datetime as dt

import polars as pl
import pytest

from cmtoolkit.errors import ConfigurationError
from cmtoolkit.profiles.synthetic import SAMPLE_SEGMENTS_YAML, profiles_frame

SIZE = 3000


@pytest.fixture(scope="module")
def people() -> pl.DataFrame:
    return profiles_frame(7, 0, SIZE, email_noise=0.3)


@pytest.fixture
def loaded(ws, people):
    ws.store.set_values(people)
    return ws


def members(rows, predicate) -> set[str]:
    return {r["profile_id"] for r in rows if predicate(r)}


def consents(row, objective: str) -> bool:
    return objective in set(row["consented_objectives"]) - set(row["refused_objectives"])


def refresh(ws, yaml_text: str) -> dict[str, set[str]]:
    ws.segments_path.parent.mkdir(parents=True, exist_ok=True)
    ws.segments_path.write_text(yaml_text, encoding="utf-8")
    infos = ws.segments.refresh()
    result = {i.name: set(ws.segments.members(i.name)) for i in infos}
    for info in infos:
        assert info.size == len(result[info.name]) and not info.stale
    return result


def test_sample_segments_match_python(loaded, people):
    rows = people.to_dicts()
    got = refresh(loaded, SAMPLE_SEGMENTS_YAML)
    expected = {
        "newsletter_optin": members(
            rows, lambda r: r["newsletter"] == "yes" and consents(r, "email_marketing")
        ),
        "vip": members(rows, lambda r: r["points"] >= 1000 or r["tier"] in ("gold", "platinum")),
        "churn_risk": members(
            rows, lambda r: not (r["last_order"] and r["last_order"] > dt.date(2026, 1, 1))
        ),
        "music_lovers": members(
            rows,
            lambda r: (
                any("music" in i for i in r["interests"])
                and r["country"] in ("Germany", "Netherlands", "France")
            ),
        ),
        "analytics_ok": members(rows, lambda r: consents(r, "analytics")),
    }
    assert got == expected
    assert all(0 < len(v) < SIZE for v in got.values())  # every sample segment is meaningful


def test_every_operator_matches_python(loaded, people, tmp_path):
    rows = people.to_dicts()
    noisy = next(r for r in rows if r["email"] != r["email"].strip().lower())
    clean = noisy["email"].strip().lower()
    (loaded.path / "lists").mkdir()
    (loaded.path / "lists" / "ids.csv").write_text(
        "profile_id\np00000001\np00000002\n\nnot-a-profile\n"
    )
    yaml_text = f"""
email_eq: {{property: email, equals: "  {clean.upper()} "}}
no_interests: {{property: interests, exists: false}}
has_interests: {{property: interests, exists: true}}
low_points: {{property: points, lt: 50}}
mid_points: {{all: [{{property: points, gt: 100}}, {{property: points, lte: 300}}]}}
early_signup: {{property: signup_at, before: "2020-06-01T12:00:00"}}
young: {{property: birthday, after: 2000-01-01}}
is_vip: {{property: vip, equals: true}}
yes_unquoted: {{property: newsletter, equals: yes}}
city_contains: {{property: city, contains: "LON"}}
combo:
  any:
    - not: {{property: tier, in: [bronze, silver]}}
    - all:
        - {{consented: [analytics, email_marketing]}}
        - {{property: interests, equals: travel}}
static: {{file: lists/ids.csv}}
"""
    got = refresh(loaded, yaml_text)
    expected = {
        "email_eq": members(rows, lambda r: r["email"].strip().lower() == clean),
        "no_interests": members(rows, lambda r: not r["interests"]),
        "has_interests": members(rows, lambda r: bool(r["interests"])),
        "low_points": members(rows, lambda r: r["points"] < 50),
        "mid_points": members(rows, lambda r: 100 < r["points"] <= 300),
        "early_signup": members(rows, lambda r: r["signup_at"] < dt.datetime(2020, 6, 1, 12)),
        "young": members(rows, lambda r: r["birthday"] > dt.date(2000, 1, 1)),
        "is_vip": members(rows, lambda r: r["vip"]),
        "yes_unquoted": members(rows, lambda r: r["newsletter"] == "yes"),
        "city_contains": members(rows, lambda r: "lon" in r["city"].lower()),
        "combo": members(
            rows,
            lambda r: (
                r["tier"] not in ("bronze", "silver")
                or (
                    (consents(r, "analytics") or consents(r, "email_marketing"))
                    and "travel" in r["interests"]
                )
            ),
        ),
        "static": {"p00000001", "p00000002"},
    }
    assert got == expected
    assert len(got["email_eq"]) == 1


def test_refresh_one_list_and_staleness(loaded):
    refresh(loaded, "a: {property: points, gte: 1000}\nb: {property: points, lt: 10}\n")
    loaded.segments_path.write_text(
        "a: {property: points, gte: 2000}\nb: {property: points, lt: 10}\n"
    )
    stale = {i.name: i.stale for i in loaded.segments.list()}
    assert stale == {"a": True, "b": False}
    [info] = loaded.segments.refresh("a")
    assert info.name == "a" and not info.stale
    loaded.segments_path.write_text("b: {property: points, lt: 10}\n")
    loaded.segments.refresh()  # a segment no longer defined is dropped
    assert loaded.segments.members("a") == []
    assert [i.name for i in loaded.segments.list()] == ["b"]
    with pytest.raises(ConfigurationError, match="no segment 'zzz'"):
        loaded.segments.refresh("zzz")


@pytest.mark.parametrize(
    ("rule", "message"),
    [
        ("{property: colour, equals: red}", "segment 'bad': unknown property 'colour'"),
        ("{property: city, resembles: x}", "segment 'bad': unknown operator 'resembles'"),
        ("{some: []}", "segment 'bad': unknown operator 'some'"),
        ("{property: city, gt: 3}", "compares numbers but 'city' is a text property"),
        ("{property: points, gt: lots}", "needs a number"),
        ("{property: last_order, before: soon}", "needs an ISO date"),
        ("{property: city, equals: a, in: [b]}", "exactly one of"),
        ("{file: missing.csv}", "does not exist"),
        ('{property: "city\\" OR 1=1 --", equals: x}', "unknown property"),
    ],
)
def test_rule_errors_name_segment_and_problem(loaded, rule, message):
    loaded.segments_path.write_text(f"ok: {{property: points, gte: 1}}\nbad: {rule}\n")
    with pytest.raises(ConfigurationError, match="segment 'bad'"):
        loaded.segments.refresh()
    with pytest.raises(ConfigurationError) as info:
        loaded.segments.refresh("bad")
    assert message in str(info.value)
    assert loaded.segments.members("ok") == []  # nothing refreshed


def test_invalid_yaml_names_the_file(loaded):
    loaded.segments_path.write_text("a: [unclosed\n")
    with pytest.raises(ConfigurationError, match=r"segments\.yaml: invalid YAML"):
        loaded.segments.list()


def test_injection_in_rule_values_and_property_names_is_inert(ws):
    evil_name = 'c" = c OR 1=1; DROP TABLE profiles; --'
    ws.store.set_values(
        pl.DataFrame(
            {"profile_id": ["a", "b"], evil_name: ["x' OR '1'='1", "y"], "k": ["k1", "k2"]}
        )
    )
    got = refresh(
        ws,
        "s1: {property: k, equals: \"k1' OR '1'='1\"}\n"
        's2: {property: k, in: ["1\') OR true --"]}\n'
        f"s3: {{property: '{evil_name}', equals: \"x' OR '1'='1\"}}\n"
        's4: {property: k, contains: "%"}\n',
    )
    assert got == {"s1": set(), "s2": set(), "s3": {"a"}, "s4": set()}
    assert ws.store.count() == 2


def test_membership_files_stay_inside_the_workspace_unless_allowed(loaded, people, tmp_path):
    first = people["profile_id"][0]
    outside = tmp_path / "elsewhere.csv"
    outside.write_text(f"{first}\n", encoding="utf-8")
    link = loaded.path / "link.csv"
    link.symlink_to(outside)  # a symlink out counts as outside
    for target in (str(outside), "../elsewhere.csv", "link.csv", "/etc/passwd"):
        with pytest.raises(ConfigurationError, match="outside the workspace") as info:
            refresh(loaded, f"leak: {{file: {target}}}\n")
        assert "allow_outside_workspace: true" in str(info.value)
    allowed = refresh(loaded, f"partner: {{file: {outside}, allow_outside_workspace: true}}\n")
    assert allowed == {"partner": {first}}
    (loaded.path / "ids.csv").write_text(f"{first}\n", encoding="utf-8")
    assert refresh(loaded, "inside: {file: ids.csv}\n") == {"inside": {first}}
    with pytest.raises(ConfigurationError, match="allow_outside_workspace"):
        refresh(loaded, "x: {file: ids.csv, allow_outside_workspace: 'yes'}\n")


def test_a_membership_file_is_read_line_by_line(loaded, people):
    """A header, CRLF line ends, padding, empty lines and CSV-looking text (quotes, commas,
    tabs) are plain lines: each line is one id, trimmed."""
    a, b, c = people["profile_id"][:3]
    text = f'profile_id\r\n  {a}  \r\n\r\n{b}\n\n"{c}"\nnobody, "else"\n\t{c},x\n'
    (loaded.path / "ids.csv").write_bytes(text.encode("utf-8"))
    assert refresh(loaded, "picked: {file: ids.csv}\n") == {"picked": {a, b}}
    (loaded.path / "ids.csv").write_bytes(b"\xff\xfe" + a.encode())
    with pytest.raises(ConfigurationError, match="UTF-8"):
        refresh(loaded, "picked: {file: ids.csv}\n")


def test_segments_yaml_not_utf8_or_nested_too_deep_is_refused_naming_it(loaded):
    loaded.segments_path.write_bytes(
        "# ok\nx: {property: city, equals: K\xf6ln}\n".encode("latin-1")
    )
    with pytest.raises(ConfigurationError, match=r"segments\.yaml: line 2 is not UTF-8"):
        loaded.segments.list()
    for depth in (51, 3000):  # 3000: past the YAML parser's own recursion
        text = "deep: " + "{not: " * depth + "{property: city, exists: true}" + "}" * depth
        loaded.segments_path.write_text(text + "\n", encoding="utf-8")
        with pytest.raises(ConfigurationError, match="more than 50 levels deep"):
            loaded.segments.list()
    text = "ok: " + "{not: " * 48 + "{property: city, exists: true}" + "}" * 48
    loaded.segments_path.write_text(text + "\n", encoding="utf-8")
    assert [i.name for i in loaded.segments.refresh()] == ["ok"]
