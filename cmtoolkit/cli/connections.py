"""``cmtoolkit auth login|status|logout`` and ``cmtoolkit status CONNECTION``."""

from __future__ import annotations

import argparse
import getpass
import logging
import os
import sys
import webbrowser
from collections.abc import Callable
from datetime import UTC, datetime
from pathlib import Path
from typing import TYPE_CHECKING, TypedDict

from cmtoolkit.campaign_monitor import CampaignMonitor, ClientSummary, OAuthApp
from cmtoolkit.cli import connection_files
from cmtoolkit.cli.arguments import add_workspace_argument, print_json
from cmtoolkit.connection.client import client_for_credential
from cmtoolkit.connection.file import find_connection, load_connection
from cmtoolkit.connection.login import DEFAULT_SCOPES, login_api_key, login_oauth
from cmtoolkit.connection.status import Problem, ProfileStore, Status, connection_status
from cmtoolkit.credentials import (
    DEFAULT_NAME,
    ENV_FALLBACK,
    ApiKeyCredential,
    CredentialStore,
    OAuthCredential,
)
from cmtoolkit.errors import AuthenticationError, CmToolkitError, CredentialError
from cmtoolkit.secret import Secret
from cmtoolkit.workspace import Workspace

if TYPE_CHECKING:
    from cmtoolkit.cli.arguments import Subcommands

log = logging.getLogger(__name__)


class ClientRow(TypedDict):
    client_id: str
    name: str


class CredentialRow(TypedDict, total=False):
    """One credential in ``auth status`` (its ``--json`` output, key for key)."""

    name: str
    kind: str | None
    source: str | None
    expires_at: str | None
    app_client_id: str | None
    works: bool
    problem: str
    clients: list[ClientRow]


def register(sub: Subcommands) -> None:
    auth = sub.add_parser("auth", help="log in to Campaign Monitor and manage stored credentials")
    auth_sub = auth.add_subparsers(dest="auth_command", metavar="ACTION")
    auth_sub.required = True

    login = auth_sub.add_parser("login", help="store an API key or connect with OAuth")
    _credential_argument(login)
    source = login.add_mutually_exclusive_group()
    source.add_argument(
        "--api-key-env", metavar="VAR", help="read the API key from this environment variable"
    )
    source.add_argument("--oauth", action="store_true", help="connect with OAuth in a browser")
    login.add_argument("--client-id", help="OAuth app client id (with --oauth)")
    login.add_argument(
        "--client-secret-env",
        metavar="VAR",
        help="environment variable holding the OAuth app client secret (else prompted)",
    )
    login.add_argument(
        "--redirect-uri",
        help="the app's registered loopback redirect URI, e.g. http://127.0.0.1:8976/callback",
    )
    login.add_argument(
        "--scope", default=",".join(DEFAULT_SCOPES), help="comma-separated OAuth scopes"
    )
    login.add_argument("--no-browser", action="store_true", help="print the URL, do not open it")
    login.add_argument("--timeout", type=float, default=300.0, help="seconds to wait (OAuth)")
    login.add_argument("--no-verify", action="store_true", help="save without a test call")
    login.set_defaults(func=cmd_login)

    status = auth_sub.add_parser("status", help="list stored credentials and whether they work")
    _credential_argument(status, default=None)
    status.add_argument("--no-check", action="store_true", help="do not call Campaign Monitor")
    status.add_argument("--json", action="store_true", help="machine-readable output")
    status.set_defaults(func=cmd_auth_status)

    logout = auth_sub.add_parser("logout", help="forget a stored credential")
    _credential_argument(logout)
    logout.set_defaults(func=cmd_logout)

    for p in (login, status, logout):
        add_workspace_argument(p)

    conns = sub.add_parser("connections", help="create and list connection files")
    conns_sub = conns.add_subparsers(dest="connections_command", metavar="ACTION")
    conns_sub.required = True
    connection_files.register(conns_sub)

    st = sub.add_parser("status", help="check a connection: errors, warnings, goal readiness")
    st.add_argument("connection", metavar="CONNECTION", help="connection name or file")
    st.add_argument("--json", action="store_true", help="machine-readable output")
    st.add_argument("--offline", action="store_true", help="skip the live checks")
    add_workspace_argument(st)
    st.set_defaults(func=cmd_status)


def _credential_argument(parser: argparse.ArgumentParser, default: str | None = "default") -> None:
    parser.add_argument(
        "--credential",
        default=default,
        metavar="NAME",
        help=f"credential name in the store (default: {default or 'all'})",
    )


# --- auth login --------------------------------------------------------------------------------


def _read_secret(env_var: str | None, prompt: str, if_empty: str) -> str:
    """A secret from ``env_var`` when one is named (it must not be empty), else a hidden prompt."""
    if not env_var:
        return getpass.getpass(prompt).strip()
    value = os.environ.get(env_var, "").strip()
    if not value:
        raise CredentialError(f"environment variable {env_var} is empty: {if_empty}")
    return value


def cmd_login(args: argparse.Namespace) -> int:
    store = CredentialStore()
    name = args.credential
    if args.oauth:
        return _login_oauth(args, store, name)
    value = _read_secret(
        args.api_key_env,
        "Campaign Monitor API key (input hidden): ",
        "export the API key in it or leave out --api-key-env to be prompted",
    )
    verify: Callable[[ApiKeyCredential], None] | None = None
    clients: list[ClientSummary] = []
    if not args.no_verify:

        def verify(credential: ApiKeyCredential) -> None:
            with CampaignMonitor(
                credential.to_auth(), base_url=os.environ.get("CMTOOLKIT_API_URL") or None
            ) as cm:
                clients.extend(cm.clients())

    login_api_key(Secret(value), name=name, store=store, verify=verify)
    print(f"✔ saved API key as credential {name!r} in {store.path}")
    for c in clients:
        print(f"  client {c.client_id}  {c.name}")
    return 0


def _login_oauth(args: argparse.Namespace, store: CredentialStore, name: str) -> int:
    if not args.client_id or not args.redirect_uri:
        raise CredentialError(
            "--oauth needs --client-id and --redirect-uri (the app's registered values from "
            "Campaign Monitor → Manage connected apps)"
        )
    secret = _read_secret(
        args.client_secret_env,
        "OAuth app client secret (input hidden): ",
        "export the app's client secret in it",
    )
    app = OAuthApp(
        client_id=args.client_id, client_secret=Secret(secret), redirect_uri=args.redirect_uri
    )

    def open_browser(url: str) -> None:
        print(f"Open this address to connect with Campaign Monitor:\n  {url}", flush=True)
        if not args.no_browser:
            webbrowser.open(url)

    credential = login_oauth(
        app,
        name=name,
        store=store,
        open_browser=open_browser,
        timeout=args.timeout,
        scopes=[s.strip() for s in args.scope.split(",") if s.strip()],
        base_url=os.environ.get("CMTOOLKIT_API_URL") or None,
    )
    expiry = _when(credential.expires_at)
    print(f"✔ connected: credential {name!r} (OAuth, expires {expiry}) saved in {store.path}")
    return 0


# --- auth status / logout ----------------------------------------------------------------------


def cmd_auth_status(args: argparse.Namespace) -> int:
    store = CredentialStore()
    names = store.names()
    rows: list[CredentialRow] = []
    wanted = [args.credential] if args.credential else list(names)
    if not args.credential and DEFAULT_NAME not in names and os.environ.get(ENV_FALLBACK):
        wanted.append(DEFAULT_NAME)  # the $CM_API_KEY fallback
    for name in wanted:
        row: CredentialRow = {"name": name}
        credential = store.find(name)
        if credential is None and name == DEFAULT_NAME and os.environ.get(ENV_FALLBACK):
            row.update({"kind": "api_key", "source": f"${ENV_FALLBACK}"})
        elif credential is None:
            row.update({"kind": None, "source": None, "works": False, "problem": "not stored"})
            rows.append(row)
            continue
        else:
            row.update({"kind": credential.kind, "source": str(store.path)})
            if isinstance(credential, OAuthCredential):
                row["expires_at"] = (
                    credential.expires_at.isoformat() if credential.expires_at else None
                )
                row["app_client_id"] = credential.client_id
        if not args.no_check:
            row.update(_check_credential(name, store))
        rows.append(row)
    if args.json:
        print_json({"store": str(store.path), "credentials": rows})
    else:
        print(f"credential store: {store.path}")
        if not rows:
            print("  no credentials: run 'cmtoolkit auth login --credential NAME'")
        for row in rows:
            print("  " + _credential_line(row))
    return 1 if any(r.get("works") is False for r in rows) else 0


def _check_credential(name: str, store: CredentialStore) -> CredentialRow:
    try:
        cm: CampaignMonitor = client_for_credential(name, store=store)
        with cm:
            clients = cm.clients()
    except CmToolkitError as exc:
        return {"works": False, "problem": _explain(exc, name)}
    return {"works": True, "clients": [{"client_id": c.client_id, "name": c.name} for c in clients]}


def _explain(exc: CmToolkitError, name: str) -> str:
    if isinstance(exc, AuthenticationError):
        return f"refused by Campaign Monitor: run 'cmtoolkit auth login --credential {name}'"
    if isinstance(exc, CredentialError):
        return str(exc)
    return f"could not check ({type(exc).__name__}); is Campaign Monitor reachable?"


def _credential_line(row: CredentialRow) -> str:
    kind = {"api_key": "API key", "oauth": "OAuth"}.get(row.get("kind") or "", "?")
    parts = [f"{row['name']}: {kind}"]
    if (row.get("source") or "").startswith("$"):
        parts.append(f"from {row['source']}")
    if row.get("kind") == "oauth":
        expires = row.get("expires_at")
        parts.append(f"expires {expires}" if expires else "no expiry recorded")
    if row.get("works") is True:
        names = ", ".join(f"{c['name']} ({c['client_id']})" for c in row.get("clients", []))
        parts.append(f"✔ works — clients: {names or 'none'}")
    elif row.get("works") is False:
        parts.append(f"✖ {row.get('problem')}")
    return ", ".join(parts)


def cmd_logout(args: argparse.Namespace) -> int:
    store = CredentialStore()
    if store.remove(args.credential):
        print(f"✔ removed credential {args.credential!r} from {store.path}")
        if args.credential == DEFAULT_NAME and os.environ.get(ENV_FALLBACK):
            print(f"  note: ${ENV_FALLBACK} is set and is still used as 'default'")
        return 0
    print(f"no credential named {args.credential!r} in {store.path}", file=sys.stderr)
    return 1


# --- status ------------------------------------------------------------------------------------


def cmd_status(args: argparse.Namespace) -> int:
    workspace = Path(args.workspace)
    path = find_connection(workspace, args.connection)
    conn = load_connection(path)
    extra: list[Problem] = []
    client: CampaignMonitor | None = None
    store: ProfileStore | None = None
    if not args.offline:
        try:
            client = client_for_credential(conn.campaign_monitor.credential)
        except CredentialError as exc:
            extra.append(Problem("campaign_monitor.credential", str(exc)))
        store, note = open_profile_store(workspace)
        if note:
            log.info("profile store not checked: %s", note)
    try:
        status = connection_status(conn, client=client, store=store)
    finally:
        if client is not None:
            client.close()
    if extra:
        status.errors[:0] = extra
        status.import_ready = status.export_ready = status.targeting_ready = False
    if args.json:
        data = {"connection": conn.name, "file": str(path), **status.to_dict()}
        print_json(data)
    else:
        print(render_status(conn.name, str(path), status, conn.goals))
    return 1 if status.errors else 0


def render_status(name: str, file: str, status: Status, goals: tuple[str, ...]) -> str:
    lines = [f"Connection {name!r} ({file})"]
    marks = []
    for goal in ("import", "export", "targeting"):
        if goal not in goals:
            marks.append(f"– {goal} (not configured)")
        else:
            ready = getattr(status, f"{goal}_ready")
            marks.append(f"{'✔' if ready else '✖'} {goal}")
    lines.append("  " + "   ".join(marks))
    if status.errors:
        lines.append("Errors (fix these in the connection file or in Campaign Monitor):")
        lines += [f"  ✖ {p}" for p in status.errors]
    if status.warnings:
        lines.append("Warnings:")
        lines += [f"  ! {p}" for p in status.warnings]
    checked = ", ".join(status.checked) or "nothing live (file only)"
    lines.append(f"Checked: {checked}")
    return "\n".join(lines)


def open_profile_store(workspace: Path) -> tuple[ProfileStore | None, str | None]:
    """The workspace (properties and segments) for status checks, or None and why not."""
    if not (workspace / "profiles.duckdb").exists():
        return None, f"no profiles.duckdb in {workspace}"
    return Workspace(workspace), None


def _when(moment: datetime | None) -> str:
    if moment is None:
        return "never"
    return moment.astimezone(UTC).strftime("%Y-%m-%d %H:%M UTC")
