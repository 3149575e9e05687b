"""Where connection files live in a workspace, and reading and writing them.

``connections/<slug>.yaml`` is found by name, slug or path; writes are atomic and keep the key
order of DESIGN §4. Validation is :mod:`cmtoolkit.connection.parsing`.
"""

from __future__ import annotations

import os
import re
import secrets
import sys
import tempfile
import unicodedata
from collections.abc import Iterator
from pathlib import Path

import yaml

from cmtoolkit.connection.model import Connection
from cmtoolkit.connection.parsing import parse_connection
from cmtoolkit.errors import ConnectionFileError

__all__ = [
    "CONNECTIONS_DIR",
    "connection_path",
    "connections_dir",
    "dump_connection",
    "duplicate_id_problem",
    "ensure_id",
    "find_connection",
    "iter_connections",
    "list_connections",
    "load_connection",
    "new_connection_id",
    "parse_connection",
    "save_connection",
    "slugify",
]

CONNECTIONS_DIR = "connections"


# --- workspace helpers -------------------------------------------------------------------------


def slugify(name: str) -> str:
    """The file stem for a connection name: ``"Newsletter sync"`` → ``newsletter-sync``."""
    text = unicodedata.normalize("NFKD", name).encode("ascii", "ignore").decode()
    slug = re.sub(r"[^a-z0-9]+", "-", text.lower()).strip("-")
    return slug or "connection"


def connections_dir(workspace: Path | str) -> Path:
    return Path(workspace) / CONNECTIONS_DIR


def connection_path(workspace: Path | str, name: str) -> Path:
    """Where the connection called ``name`` lives in ``workspace``."""
    return connections_dir(workspace) / f"{slugify(name)}.yaml"


def list_connections(workspace: Path | str) -> list[Path]:
    """The connection files of a workspace, sorted by file name."""
    folder = connections_dir(workspace)
    if not folder.is_dir():
        return []
    return sorted(p for p in folder.iterdir() if p.suffix in (".yaml", ".yml") and p.is_file())


def find_connection(workspace: Path | str, name: str) -> Path:
    """The file of a connection given its name, its slug or a path to the file."""
    candidate = Path(name)
    if candidate.suffix in (".yaml", ".yml") and candidate.is_file():
        return candidate
    files = list_connections(workspace)
    wanted = slugify(name)
    for path in files:
        if path.stem == name or path.stem == wanted:
            return path
    for path in files:  # a file whose stem differs from its 'name:' key
        try:
            data = yaml.safe_load(path.read_text(encoding="utf-8"))
        except (OSError, yaml.YAMLError):
            continue
        if isinstance(data, dict) and data.get("name") == name:
            return path
    known = ", ".join(p.stem for p in files) or "none"
    raise ConnectionFileError(
        f"no connection {name!r} in {connections_dir(workspace)} (known: {known}); "
        f"create connections/{wanted}.yaml or pass another --workspace"
    )


# --- load / save -------------------------------------------------------------------------------


def load_connection(path: Path | str) -> Connection:
    """Read and validate one connection file."""
    path = Path(path)
    label = _label(path)
    try:
        text = path.read_text(encoding="utf-8")
    except FileNotFoundError:
        raise ConnectionFileError(
            "file not found: create it or check the connection name", file=label
        ) from None
    except (OSError, UnicodeDecodeError) as exc:
        raise ConnectionFileError(
            f"cannot read the file ({type(exc).__name__}): check it is a UTF-8 text file",
            file=label,
        ) from None
    return parse_connection(text, file=label, default_name=path.stem)


def new_connection_id() -> str:
    """8 hex digits starting with a letter, so YAML reads it unquoted as text, never a number."""
    return secrets.choice("abcdef") + secrets.token_hex(4)[:7]


def ensure_id(path: Path | str) -> Connection:
    """The connection of ``path``, with an ``id`` written into the file first if it has none.

    The id keeps a connection's run state across renames (DESIGN §4). Only the one line is
    inserted (after ``name:``), so the file's comments and layout stay as the user wrote them;
    the write is said on stderr, as the user should know their file changed.
    """
    path = Path(path)
    conn = load_connection(path)
    if conn.id is not None:
        return conn
    new_id = new_connection_id()
    text = path.read_text(encoding="utf-8")
    lines = text.splitlines(keepends=True)
    at = next((i + 1 for i, line in enumerate(lines) if re.match(r"name\s*:", line)), 0)
    lines.insert(at, f"id: {new_id}\n")
    _write_atomic(path, "".join(lines))
    print(f"connection file {_label(path)} had no id; wrote id: {new_id}", file=sys.stderr)
    return load_connection(path)


def duplicate_id_problem(workspace: Path | str, path: Path | str, conn: Connection) -> str | None:
    """An error when another connection file of the workspace has the same id and this file is
    the copy (modified later; on a tie, later by name): a copy must not share the run state.

    The original keeps its id, so its runs go on undisturbed; the copy is the one to fix.
    """
    if conn.id is None:
        return None
    path = Path(path).resolve()
    mine = (path.stat().st_mtime, path.name)
    for other in list_connections(workspace):
        if other.resolve() == path:
            continue
        try:
            data = yaml.safe_load(other.read_text(encoding="utf-8"))
        except (OSError, yaml.YAMLError, UnicodeDecodeError):
            continue
        if not isinstance(data, dict) or str(data.get("id")) != conn.id:
            continue
        if (other.stat().st_mtime, other.name) < mine:
            return (
                f"{_label(path)} has the same id {conn.id} as {_label(other)}: it looks like a "
                "copy, and a copy must not share its run state. Delete the 'id:' line of "
                f"{_label(path)}; its next use writes a new id"
            )
    return None


def save_connection(conn: Connection, path: Path | str) -> Path:
    """Write ``conn`` as YAML (atomically), in the key order of DESIGN §4."""
    path = Path(path)
    path.parent.mkdir(parents=True, exist_ok=True)
    _write_atomic(path, dump_connection(conn))
    return path


def _write_atomic(path: Path, text: str) -> None:
    fd, tmp = tempfile.mkstemp(prefix=f".{path.name}.", suffix=".tmp", dir=path.parent)
    try:
        with os.fdopen(fd, "w", encoding="utf-8") as fh:
            fh.write(text)
        os.replace(tmp, path)
    except BaseException:
        Path(tmp).unlink(missing_ok=True)
        raise


def dump_connection(conn: Connection) -> str:
    """The YAML text :func:`save_connection` writes."""
    text = yaml.dump(
        _flowify(conn.to_dict()),
        Dumper=_Dumper,
        sort_keys=False,
        allow_unicode=True,
        default_flow_style=False,
        width=100,
    )
    # A blank line before each goal, as people write it.
    return re.sub(r"\n(import|export|targeting|alerts):", r"\n\n\1:", text)


class _FlowList(list):
    pass


class _FlowDict(dict):
    pass


class _Dumper(yaml.SafeDumper):
    pass


_Dumper.add_representer(
    _FlowList, lambda d, v: d.represent_sequence("tag:yaml.org,2002:seq", v, flow_style=True)
)
_Dumper.add_representer(
    _FlowDict, lambda d, v: d.represent_mapping("tag:yaml.org,2002:map", v, flow_style=True)
)


def _flowify(value: object) -> object:
    """Lists of scalars and flat mappings inside lists read best in flow style (DESIGN §4)."""
    if isinstance(value, dict):
        return {k: _flowify(v) for k, v in value.items()}
    if isinstance(value, list):
        if all(_is_scalar(v) for v in value):
            return _FlowList(value)
        return [
            _FlowDict(v)
            if isinstance(v, dict) and all(map(_is_scalar, v.values()))
            else _flowify(v)
            for v in value
        ]
    return value


def _is_scalar(value: object) -> bool:
    return not isinstance(value, (dict, list))


def _label(path: Path) -> str:
    """``connections/news.yaml`` rather than an absolute path, when the file is in a workspace."""
    if path.parent.name == CONNECTIONS_DIR:
        return f"{CONNECTIONS_DIR}/{path.name}"
    return str(path)


def iter_connections(workspace: Path | str) -> Iterator[Connection]:
    """Every valid connection of a workspace (an invalid file raises)."""
    for path in list_connections(workspace):
        yield load_connection(path)
