"""Segments: rules from ``segments.yaml`` compiled to parameterised SQL, materialised membership.

A rule's condition holds when ANY value of the (multi-valued) property satisfies it; property
names go through :func:`quote_ident` and every value is a parameter. The rule language is in
docs/profiles.md. A segment whose definition changed since its last refresh is ``stale``.
"""

from __future__ import annotations

import datetime as dt
import hashlib
import json
import re
from dataclasses import asdict, dataclass
from pathlib import Path

import duckdb
import yaml

from cmtoolkit.errors import ConfigurationError
from cmtoolkit.profiles.consent import consent_condition
from cmtoolkit.profiles.events import NO_EVENTS, event_condition, has_events
from cmtoolkit.profiles.properties import defined_properties
from cmtoolkit.profiles.quoting import quote_ident
from cmtoolkit.profiles.store import Store

#: One segment's definition as written in ``segments.yaml`` (a rule or ``{file: PATH}``).
Definition = dict[str, object]

OPERATORS = (
    "exists", "equals", "contains", "in", "gt", "gte", "lt", "lte", "before", "after",
)  # fmt: skip
_COMPARE = {"gt": ">", "gte": ">=", "lt": "<", "lte": "<="}


class _YamlLoader(yaml.SafeLoader):
    """SafeLoader where only true/false are booleans (``yes``/``no``/``on``/``off`` stay text)."""


_YamlLoader.yaml_implicit_resolvers = {
    key: [(tag, rx) for tag, rx in resolvers if tag != "tag:yaml.org,2002:bool"]
    for key, resolvers in yaml.SafeLoader.yaml_implicit_resolvers.items()
}
_YamlLoader.add_implicit_resolver(
    "tag:yaml.org,2002:bool", re.compile(r"^(?:true|True|TRUE|false|False|FALSE)$"), list("tTfF")
)


def read_definitions(path: Path) -> dict[str, Definition]:
    """Segment name → definition, from ``segments.yaml`` (empty when the file is absent)."""
    if not path.exists():
        return {}
    try:
        data = yaml.load(read_utf8(path), Loader=_YamlLoader)
    except yaml.YAMLError as exc:
        raise ConfigurationError(f"{path}: invalid YAML: {exc}") from exc
    except RecursionError:  # nested past the YAML parser's stack
        raise ConfigurationError(_too_deep(path, "the file")) from None
    if data is None:
        return {}
    if not isinstance(data, dict):
        raise ConfigurationError(f"{path}: expected a mapping of segment names to definitions")
    for name, definition in data.items():
        if not isinstance(name, str) or not name.strip():
            raise ConfigurationError(f"{path}: segment name {name!r} must be a non-empty string")
        if not isinstance(definition, dict):
            raise ConfigurationError(f"{path}: segment {name!r}: expected a mapping (a rule)")
        if _depth(definition) > MAX_DEPTH:
            raise ConfigurationError(_too_deep(path, f"segment {name!r}"))
    return data


#: How deep rules may nest (``all``/``any``/``not`` inside one another); real rules use a few.
MAX_DEPTH = 50

#: A membership file's members: one id a line, surrounding blanks, empty lines and a
#: ``profile_id`` header ignored; read as lines (no quoting, no delimiter).
MEMBERSHIP_FILE_SQL = """
SELECT p.profile_id FROM profiles AS p WHERE p.profile_id IN (
    SELECT id FROM (
        SELECT trim(line, ' ' || chr(9) || chr(11) || chr(12) || chr(13)) AS id
        FROM read_csv(?, header = false, columns = {'line': 'VARCHAR'}, delim = chr(0),
                      quote = '', escape = '', auto_detect = false, strict_mode = false)
    ) WHERE id <> '' AND id <> 'profile_id'
)"""


def _too_deep(path: Path, what: str) -> str:
    return (
        f"{path}: {what} nests rules more than {MAX_DEPTH} levels deep; flatten it "
        "(all/any take a list of any length)"
    )


def _depth(value: object) -> int:
    """How deeply mappings and lists nest in ``value`` (iterative: no recursion limit)."""
    deepest, stack = 0, [(value, 1)]
    while stack:
        item, level = stack.pop()
        deepest = max(deepest, level)
        if deepest > MAX_DEPTH:
            break
        children = (
            item.values() if isinstance(item, dict) else item if isinstance(item, list) else ()
        )
        stack.extend((child, level + 1) for child in children)
    return deepest


def read_utf8(path: Path, data: bytes | None = None) -> str:
    """A text file's content; :class:`ConfigurationError` naming the line when it is not UTF-8."""
    raw = path.read_bytes() if data is None else data
    try:
        return raw.decode("utf-8-sig")
    except UnicodeDecodeError as exc:
        line = raw[: exc.start].count(b"\n") + 1
        raise ConfigurationError(
            f"{path}: line {line} is not UTF-8 (byte 0x{raw[exc.start]:02x}); save the file as "
            "UTF-8 (e.g. `iconv -f latin1 -t utf-8`)"
        ) from None


def definition_hash(definition: object, file_bytes: bytes | None = None) -> str:
    digest = hashlib.sha256(json.dumps(definition, sort_keys=True, default=str).encode())
    if file_bytes is not None:
        digest.update(file_bytes)
    return digest.hexdigest()[:16]


# --- rule compilation --------------------------------------------------------------------------


class _Compiler:
    def __init__(self, segment: str, properties: dict[str, str], events: bool = True) -> None:
        self.segment = segment
        self.properties = properties
        self.events = events  # whether the store has email_events (profiles/events.py)
        self.params: list[object] = []

    def fail(self, message: str) -> ConfigurationError:
        return ConfigurationError(f"segment {self.segment!r}: {message}")

    def rule(self, rule: object) -> str:
        if not isinstance(rule, dict) or not rule:
            raise self.fail(f"a rule must be a non-empty mapping, not {rule!r}")
        if "property" in rule:
            return self.condition(rule)
        if "event" in rule:
            if not self.events:
                raise self.fail(NO_EVENTS)
            return event_condition(rule, self.params, self.fail)
        if len(rule) != 1:
            raise self.fail(
                f"a combinator rule has exactly one key (all, any, not, consented): {sorted(rule)}"
            )
        ((key, value),) = rule.items()
        if key in ("all", "any"):
            if not isinstance(value, list) or not value:
                raise self.fail(f"{key!r} needs a non-empty list of rules")
            joiner = " AND " if key == "all" else " OR "
            return "(" + joiner.join(self.rule(r) for r in value) + ")"
        if key == "not":
            inner = self.rule({"all": value}) if isinstance(value, list) else self.rule(value)
            return f"(NOT {inner})"
        if key == "consented":
            objectives = value if isinstance(value, list) else [value]
            if not objectives or not all(isinstance(o, str) and o for o in objectives):
                raise self.fail("'consented' needs an objective name or a list of them")
            sql, params = consent_condition(objectives, "p")
            self.params += params
            return sql
        raise self.fail(
            f"unknown operator {key!r}; use all, any, not, consented, or "
            "{property: NAME, <condition>: VALUE} with a condition among " + ", ".join(OPERATORS)
        )

    def condition(self, rule: dict[str, object]) -> str:
        name = rule["property"]
        ops = [k for k in rule if k != "property"]
        if len(ops) != 1:
            raise self.fail(
                f"condition on {name!r} needs exactly one of {', '.join(OPERATORS)}; got {ops}"
            )
        op, value = ops[0], rule[ops[0]]
        if op not in OPERATORS:
            raise self.fail(
                f"unknown operator {op!r} on property {name!r}; use one of {', '.join(OPERATORS)}"
            )
        if not isinstance(name, str) or name not in self.properties:
            known = ", ".join(sorted(self.properties))
            raise self.fail(f"unknown property {name!r} (defined: {known})")
        type_ = self.properties[name]
        col = f"p.{quote_ident(name)}"
        if op == "exists":
            if not isinstance(value, bool):
                raise self.fail(f"'exists' on {name!r} takes true or false")
            has = f"coalesce(len({col}) > 0, false)"
            return has if value else f"(NOT {has})"
        if op == "equals":
            return self.any_value(col, self.match(type_), self.scalar(value, type_, op))
        if op == "in":
            if not isinstance(value, list) or not value:
                raise self.fail(f"'in' on {name!r} needs a non-empty list")
            values = [self.scalar(v, type_, op) for v in value]
            if type_ == "number":
                pred = "list_contains(?::DOUBLE[], TRY_CAST(x AS DOUBLE))"
            elif type_ in ("email", "boolean"):
                pred = "list_contains(?::VARCHAR[], lower(trim(x)))"
            else:
                pred = "list_contains(?::VARCHAR[], x)"
            return self.any_value(col, pred, values)
        if op == "contains":
            if not isinstance(value, str | int | float) or isinstance(value, bool):
                raise self.fail(f"'contains' on {name!r} needs a text value")
            return self.any_value(col, "contains(lower(x), lower(?))", str(value))
        if op in _COMPARE:
            if type_ != "number":
                raise self.fail(f"{op!r} compares numbers but {name!r} is a {type_} property")
            number = self.number(value, op)
            return self.any_value(col, f"TRY_CAST(x AS DOUBLE) {_COMPARE[op]} ?", number)
        # before / after
        if type_ not in ("date", "datetime"):
            raise self.fail(f"{op!r} compares dates but {name!r} is a {type_} property")
        moment = self.moment(value, op)
        sign = "<" if op == "before" else ">"
        return self.any_value(col, f"TRY_CAST(x AS TIMESTAMP) {sign} ?::TIMESTAMP", moment)

    def match(self, type_: str) -> str:
        if type_ == "number":
            return "TRY_CAST(x AS DOUBLE) = ?"
        if type_ in ("email", "boolean"):
            return "lower(trim(x)) = ?"
        return "x = ?"

    def scalar(self, value: object, type_: str, op: str) -> str | float:
        if isinstance(value, bool):
            value = "true" if value else "false"
        if isinstance(value, dt.date):
            value = value.isoformat()
        if not isinstance(value, str | int | float):
            raise self.fail(f"{op!r} needs a text or number value, not {value!r}")
        if type_ == "number":
            return self.number(value, op)
        if type_ in ("email", "boolean"):
            return str(value).strip().lower()
        return str(value)

    def number(self, value: object, op: str) -> float:
        if isinstance(value, bool) or not isinstance(value, int | float | str):
            raise self.fail(f"{op!r} needs a number, not {value!r}")
        try:
            return float(value)
        except (TypeError, ValueError):
            raise self.fail(f"{op!r} needs a number, not {value!r}") from None

    def moment(self, value: object, op: str) -> dt.datetime:
        if isinstance(value, dt.datetime):
            return value.replace(tzinfo=None)
        if isinstance(value, dt.date):
            return dt.datetime.combine(value, dt.time())
        try:
            return dt.datetime.fromisoformat(str(value)).replace(tzinfo=None)
        except ValueError:
            raise self.fail(f"{op!r} needs an ISO date like 2026-01-01, not {value!r}") from None

    def any_value(self, col: str, predicate: str, param: object) -> str:
        self.params.append(param)
        return f"coalesce(len(list_filter({col}, lambda x: {predicate})) > 0, false)"


def compile_rule(
    segment: str, rule: object, properties: dict[str, str], *, events: bool = True
) -> tuple[str, list[object]]:
    """A SQL boolean over ``profiles AS p`` and its parameters, for one segment's rule
    (``events``: the store has ``email_events``, so event conditions may be used)."""
    compiler = _Compiler(segment, properties, events)
    sql = compiler.rule(rule)
    return sql, compiler.params


# --- materialisation ---------------------------------------------------------------------------


@dataclass
class SegmentInfo:
    name: str
    kind: str  # "rules" or "file"
    size: int | None  # None: never refreshed
    refreshed_at: str | None
    stale: bool  # the definition changed since the last refresh (or never refreshed)


class Segments:
    """The segments of a workspace: definitions in YAML, membership in the store."""

    def __init__(self, store: Store, path: Path) -> None:
        self.store = store
        self.path = Path(path)

    def definitions(self) -> dict[str, Definition]:
        return read_definitions(self.path)

    def names(self) -> list[str]:
        """The defined segments' names; none while ``segments.yaml`` does not exist."""
        return sorted(self.definitions()) if self.path.exists() else []

    def _plan(
        self, name: str, definition: Definition, properties: dict[str, str], events: bool = True
    ) -> tuple[str, list[object], str]:
        """SQL selecting the member ids, its parameters, and the definition hash."""
        if "file" in definition:
            file = self._membership_file(name, definition)
            data = file.read_bytes()
            read_utf8(file, data)  # a clear error for a file that is not UTF-8
            # DuckDB reads the ids itself: ten million of them as a Python list took 2.5 GB.
            return MEMBERSHIP_FILE_SQL, [str(file.resolve())], definition_hash(definition, data)
        where, params = compile_rule(name, definition, properties, events=events)
        sql = f"SELECT p.profile_id FROM profiles AS p WHERE {where}"
        return sql, params, definition_hash(definition)

    def sql(self, name: str) -> tuple[str, list[object]]:
        """The live membership query of one segment (for previews without a refresh)."""
        definitions = self.definitions()
        if name not in definitions:
            raise ConfigurationError(f"no segment {name!r} in {self.path}")
        with self.store.connect() as con:
            properties = defined_properties(con)
            events = has_events(con)
        sql, params, _ = self._plan(name, definitions[name], properties, events)
        return sql, params

    def refresh(self, name: str | None = None) -> list[SegmentInfo]:
        """Recompute membership of one segment or all (dropping ones no longer defined)."""
        definitions = self.definitions()
        if name is not None and name not in definitions:
            raise ConfigurationError(
                f"no segment {name!r} in {self.path}; defined: {', '.join(definitions) or 'none'}"
            )
        names = [name] if name is not None else list(definitions)
        with self.store.transaction() as con:
            properties = defined_properties(con)
            events = has_events(con)
            plans = {n: self._plan(n, definitions[n], properties, events) for n in names}
            for segment, (sql, params, digest) in plans.items():
                con.execute("DELETE FROM segment_members WHERE segment = ?", [segment])
                con.execute(
                    f"INSERT INTO segment_members (segment, profile_id) SELECT ?, m.profile_id"
                    f" FROM ({sql}) AS m",
                    [segment, *params],
                )
                size = con.execute(
                    "SELECT count(*) FROM segment_members WHERE segment = ?", [segment]
                ).fetchall()[0][0]
                con.execute(
                    "INSERT INTO segments (name, definition_hash, size, refreshed_at)"
                    " VALUES (?, ?, ?, now()) ON CONFLICT (name) DO UPDATE SET"
                    " definition_hash = excluded.definition_hash, size = excluded.size,"
                    " refreshed_at = excluded.refreshed_at",
                    [segment, digest, size],
                )
            if name is None:
                gone = list(set(_stored(con)) - set(definitions))
                con.execute(
                    "DELETE FROM segment_members WHERE list_contains(?::VARCHAR[], segment)", [gone]
                )
                con.execute("DELETE FROM segments WHERE list_contains(?::VARCHAR[], name)", [gone])
        infos = self.list()
        return [i for i in infos if i.name in names]

    def _digest(self, name: str, definition: Definition) -> str:
        if "file" in definition:
            return definition_hash(definition, self._membership_file(name, definition).read_bytes())
        return definition_hash(definition)

    def _membership_file(self, name: str, definition: Definition) -> Path:
        """A static segment's file: inside the workspace unless ``allow_outside_workspace: true``
        says otherwise (a segments.yaml from elsewhere must not read any file it names)."""
        keys = set(definition) - {"file", "allow_outside_workspace"}
        outside = definition.get("allow_outside_workspace", False)
        if keys or not isinstance(definition["file"], str) or not isinstance(outside, bool):
            raise ConfigurationError(
                f"{self.path}: segment {name!r}: a static segment is {{file: PATH}}, plus "
                "`allow_outside_workspace: true` for a file outside the workspace"
            )
        root = self.path.parent.resolve()
        file = (root / definition["file"]).resolve()
        if not outside and not file.is_relative_to(root):
            raise ConfigurationError(
                f"{self.path}: segment {name!r}: membership file {definition['file']} is outside "
                f"the workspace {root}; copy it into the workspace, or add "
                "`allow_outside_workspace: true` to the segment if you mean it"
            )
        if not file.is_file():
            raise ConfigurationError(
                f"{self.path}: segment {name!r}: membership file {file} does not exist"
            )
        return file

    def members(self, name: str) -> list[str]:
        """Profile ids in the segment as of its last refresh, sorted."""
        with self.store.connect() as con:
            rows = con.execute(
                "SELECT profile_id FROM segment_members WHERE segment = ? ORDER BY profile_id",
                [name],
            ).fetchall()
        return [r[0] for r in rows]

    @staticmethod
    def as_dicts(infos: list[SegmentInfo]) -> list[dict[str, object]]:
        return [asdict(i) for i in infos]

    def list(self) -> list[SegmentInfo]:
        """Every defined segment with its size at the last refresh."""
        definitions = self.definitions()
        with self.store.connect() as con:
            stored = _stored(con)
        infos = []
        for name, definition in definitions.items():
            kind = "file" if "file" in definition else "rules"
            row = stored.get(name)
            if row is None:
                infos.append(SegmentInfo(name, kind, None, None, True))
                continue
            digest, size, refreshed_at = row
            try:
                current = self._digest(name, definition)
            except ConfigurationError:
                current = None
            infos.append(
                SegmentInfo(name, kind, int(size), refreshed_at.isoformat(), current != digest)
            )
        return infos


def _stored(con: duckdb.DuckDBPyConnection) -> dict[str, tuple[str, int, dt.datetime]]:
    rows = con.execute("SELECT name, definition_hash, size, refreshed_at FROM segments").fetchall()
    return {r[0]: (r[1], r[2], r[3]) for r in rows}
