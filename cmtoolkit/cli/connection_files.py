"""``cmtoolkit connections new NAME`` and ``cmtoolkit connections list``.

``new`` is the first step of ``01_connect`` at the terminal: name → credential → client → lists
→ save. What a flag does not give is asked for when the terminal is interactive (the clients and
lists shown with their names), else left empty; the file is written with an ``id`` and
``enabled: false`` (switched on once configured) and never over an existing file. ``list`` shows
every connection of the workspace: enabled, goals, schedule and its status (file checks only,
``--check`` adds the live ones).
"""

from __future__ import annotations

import argparse
import sys
from collections.abc import Callable, Sequence
from pathlib import Path

from cmtoolkit.campaign_monitor import CampaignMonitor
from cmtoolkit.cli.arguments import add_workspace_argument, print_json
from cmtoolkit.connection.client import client_for_credential
from cmtoolkit.connection.file import (
    connection_path,
    list_connections,
    load_connection,
    new_connection_id,
    parse_connection,
    save_connection,
)
from cmtoolkit.connection.model import Connection
from cmtoolkit.connection.status import connection_status
from cmtoolkit.credentials import DEFAULT_NAME, credential_reference_problem
from cmtoolkit.errors import CmToolkitError, ConfigurationError, CredentialError

Ask = Callable[[str], str]


def register(connections: argparse._SubParsersAction[argparse.ArgumentParser]) -> None:
    new = connections.add_parser("new", help="create a connection file (flags or prompts)")
    new.add_argument("name", metavar="NAME", help="the connection's name (its file: NAME.yaml)")
    new.add_argument(
        "--credential",
        metavar="REF",
        help=f"credential name in the store or env:VAR (default: {DEFAULT_NAME})",
    )
    new.add_argument("--client", metavar="ID", help="Campaign Monitor client id")
    new.add_argument(
        "--list", dest="lists", action="append", metavar="ID", help="list to import (repeat)"
    )
    new.add_argument("--no-input", action="store_true", help="never prompt")
    add_workspace_argument(new)
    new.set_defaults(func=cmd_new)

    ls = connections.add_parser("list", help="every connection: enabled, goals, status")
    ls.add_argument("--check", action="store_true", help="also check against Campaign Monitor")
    ls.add_argument("--json", action="store_true", help="machine-readable output")
    add_workspace_argument(ls)
    ls.set_defaults(func=cmd_list)


# --- new ---------------------------------------------------------------------------------------


def cmd_new(args: argparse.Namespace) -> int:
    ask: Ask | None = None if args.no_input or not sys.stdin.isatty() else input
    path = create_connection(
        Path(args.workspace),
        args.name,
        credential=args.credential,
        client_id=args.client,
        lists=args.lists,
        ask=ask,
    )
    print(f"✔ created {path}")
    print(f"  next: cmtoolkit status {args.name} --workspace {args.workspace}; then set")
    print("  'enabled: true' (or switch it on in 01_connect) when it is ready to run")
    return 0


def create_connection(
    workspace: Path,
    name: str,
    *,
    credential: str | None = None,
    client_id: str | None = None,
    lists: Sequence[str] | None = None,
    ask: Ask | None = None,
    client: CampaignMonitor | None = None,
) -> Path:
    """Write ``connections/<name>.yaml``; :class:`ConfigurationError` when it exists.

    ``ask`` (``input``) asks for what is not given; ``client`` is the Campaign Monitor client
    to show clients and lists with (by default built from the credential when asking).
    """
    path = connection_path(workspace, name)
    if path.exists():
        raise ConfigurationError(
            f"{path} exists: a new connection never replaces one; choose another name or edit "
            "that file (cmtoolkit status NAME shows what it needs)"
        )
    if credential is None and ask is not None:
        credential = ask(f"Credential (a name in the store or env:VAR) [{DEFAULT_NAME}]: ").strip()
    credential = credential or DEFAULT_NAME
    problem = credential_reference_problem(credential)
    if problem:
        raise CredentialError(f"--credential: {problem}")
    if ask is not None and (client_id is None or lists is None):
        client_id, lists = _ask_client_and_lists(credential, client_id, lists, ask, client)
    data: dict[str, object] = {
        "name": name,
        "id": new_connection_id(),
        "enabled": False,
        "campaign_monitor": {"credential": credential, "client_id": client_id},
    }
    if lists:
        data["import"] = {
            "lists": list(lists),
            "states": ["Active"],
            "identifiers": [{"field": "EmailAddress", "property": "email"}],
        }
    conn = parse_connection(data, file=str(path), default_name=name)
    return save_connection(conn, path)


def _ask_client_and_lists(
    credential: str,
    client_id: str | None,
    lists: Sequence[str] | None,
    ask: Ask,
    client: CampaignMonitor | None,
) -> tuple[str | None, Sequence[str] | None]:
    try:
        cm = client or client_for_credential(credential)
        clients = cm.clients()
    except CmToolkitError as exc:
        print(f"  (cannot list clients: {exc})")
        clients = []
        cm = None
    if client_id is None:
        for i, c in enumerate(clients, 1):
            print(f"  {i}. {c.name} ({c.client_id})")
        answer = ask("Client (number or id, empty: none yet): ").strip()
        client_id = _pick(answer, [c.client_id for c in clients])
    if lists is None and client_id and cm is not None:
        found = cm.lists(client_id)
        for i, x in enumerate(found, 1):
            print(f"  {i}. {x.name} ({x.list_id})")
        answer = ask("Lists to import (numbers or ids, comma-separated; empty: none yet): ")
        lists = [
            picked
            for part in answer.split(",")
            if (picked := _pick(part.strip(), [x.list_id for x in found]))
        ]
    return client_id, lists


def _pick(answer: str, ids: list[str]) -> str | None:
    if not answer:
        return None
    if answer.isdigit() and 1 <= int(answer) <= len(ids) and answer not in ids:
        return ids[int(answer) - 1]
    return answer


# --- list --------------------------------------------------------------------------------------


def cmd_list(args: argparse.Namespace) -> int:
    workspace = Path(args.workspace)
    rows = [_row(path, args.check) for path in list_connections(workspace)]
    if args.json:
        print_json({"workspace": str(workspace), "connections": rows})
        return 0
    if not rows:
        print(f"no connections in {workspace / 'connections'}: cmtoolkit connections new NAME")
        return 0
    headers = ("connection", "id", "enabled", "goals", "schedule (UTC)", "status")
    table = [
        (
            str(r["name"]),
            str(r.get("id") or "—"),
            "yes" if r.get("enabled") else "no",
            str(r.get("goals_text") or "—"),
            str(r.get("schedule") or "—"),
            str(r["status"]),
        )
        for r in rows
    ]
    widths = [max(len(h), *(len(t[i]) for t in table)) for i, h in enumerate(headers)]
    for line in (headers, *table):
        print("  ".join(cell.ljust(w) for cell, w in zip(line, widths, strict=True)).rstrip())
    return 0


def _row(path: Path, check: bool) -> dict[str, object]:
    try:
        conn = load_connection(path)
    except CmToolkitError as exc:
        return {"name": path.stem, "file": str(path), "status": f"✖ invalid file: {exc}"}
    client = None
    if check:
        try:
            client = client_for_credential(conn.campaign_monitor.credential)
        except CmToolkitError as exc:
            return {**_fields(conn, path), "status": f"✖ {exc}"}
    try:
        status = connection_status(conn, client=client)
    finally:
        if client is not None:
            client.close()
    if status.errors:
        text = f"✖ {len(status.errors)} error(s): {status.errors[0]}"
    else:
        text = "✔ ready" + (f" ({len(status.warnings)} warning(s))" if status.warnings else "")
    return {**_fields(conn, path), "status": text}


def _fields(conn: Connection, path: Path) -> dict[str, object]:
    return {
        "name": conn.name,
        "id": conn.id,
        "file": str(path),
        "enabled": conn.enabled,
        "goals": list(conn.goals),
        "goals_text": ", ".join(conn.goals),
        "schedule": conn.schedule,
    }
