"""No secret ever shows: unique sentinel values are looked for everywhere a user or a log can see.

Sentinels stand for the API key, the OAuth access and refresh tokens and the app's client secret.
They must not appear in a saved connection file, in any repr/str of the model, credentials, auth
objects or Status, in CredentialError messages, in the output of ``auth status`` / ``status`` /
``auth login``, or in DEBUG logs.
"""

from __future__ import annotations

import logging
import socket
from collections.abc import Iterator
from pathlib import Path

import pytest
import requests

from cmtoolkit.campaign_monitor import OAuthApp
from cmtoolkit.cli import main
from cmtoolkit.connection import (
    connection_status,
    dump_connection,
    load_connection,
    parse_connection,
    save_connection,
)
from cmtoolkit.credentials import (
    ApiKeyCredential,
    CredentialStore,
    OAuthCredential,
    load_credential,
    resolve,
)
from cmtoolkit.errors import CmToolkitError, CredentialError
from cmtoolkit.secret import Secret

API_KEY = "SENTINELapikey7f3a9c21d0"
ACCESS = "SENTINELaccess5b8e2f64a1"
REFRESH = "SENTINELrefresh9d1c7e35b"
CLIENT_SECRET = "SENTINELclientsecret4e2a"
SENTINELS = (API_KEY, ACCESS, REFRESH, CLIENT_SECRET)


def assert_clean(text: str, where: str) -> None:
    for s in SENTINELS:
        assert s not in text, f"{where} leaks a secret"
    assert "SENTINEL" not in text, f"{where} leaks part of a secret"


def free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


@pytest.fixture
def app() -> OAuthApp:
    return OAuthApp("424242", Secret(CLIENT_SECRET), f"http://127.0.0.1:{free_port()}/cb")


@pytest.fixture
def emu(app: OAuthApp) -> Iterator[object]:
    emulator_module = pytest.importorskip("cmtoolkit.emulator")
    emulator = emulator_module.Emulator(seed_size=3, api_key=API_KEY, oauth_apps=[app])
    emulator.start()
    try:
        yield emulator
    finally:
        emulator.stop()


@pytest.fixture
def store(tmp_path: Path, monkeypatch: pytest.MonkeyPatch, emu) -> CredentialStore:  # type: ignore[no-untyped-def]
    monkeypatch.setenv("CMTOOLKIT_CREDENTIALS", str(tmp_path / "creds" / "credentials.json"))
    monkeypatch.setenv("CMTOOLKIT_API_URL", emu.base_url)
    monkeypatch.delenv("CM_API_KEY", raising=False)
    store = CredentialStore()
    store.put("default", ApiKeyCredential(Secret(API_KEY)))
    store.put(
        "stale",
        OAuthCredential(
            access_token=Secret(ACCESS),
            refresh_token=Secret(REFRESH),
            client_id="424242",
            client_secret=Secret(CLIENT_SECRET),
            redirect_uri="http://127.0.0.1:1/cb",
        ),
    )
    return store


def test_no_secret_anywhere(  # type: ignore[no-untyped-def]
    store: CredentialStore, emu, app, tmp_path: Path, monkeypatch, capsys, caplog
) -> None:
    caplog.set_level(logging.DEBUG)
    seen: list[tuple[str, str]] = []

    # the model, a saved connection file, the status
    ws = tmp_path / "ws"
    for credential in ("default", "stale", "env:TEST_CM_KEY_VAR"):
        conn = parse_connection(
            f"name: News {credential}\n"
            f"campaign_monitor: {{credential: '{credential}', client_id: {emu.client_id}}}\n"
            f"import:\n  lists: [{emu.list_ids[0]}]\n"
            "  identifiers: [{field: EmailAddress, property: email}]\n"
        )
        path = save_connection(conn, ws / "connections" / f"{credential.replace(':', '-')}.yaml")
        seen += [
            ("connection file", path.read_text()),
            ("connection repr", repr(load_connection(path))),
            ("connection str", str(conn)),
            ("connection yaml", dump_connection(conn)),
        ]
    monkeypatch.setenv("TEST_CM_KEY_VAR", API_KEY)

    # credentials and auth objects
    for ref in ("default", "stale", "env:TEST_CM_KEY_VAR"):
        cred = load_credential(ref, store=store)
        auth = resolve(ref, store=store)
        seen += [(f"{ref} credential", repr(cred) + str(cred)), (f"{ref} auth", repr(auth))]
    seen.append(("store repr", repr(store)))

    # CredentialError messages
    errors: list[BaseException] = []
    for attempt in (
        lambda: load_credential(API_KEY, store=store),
        lambda: load_credential("env:NOT_SET_HERE", store=store),
        lambda: store.get("missing"),
    ):
        with pytest.raises(CredentialError) as info:
            attempt()
        errors.append(info.value)
    store.path.chmod(0o640)
    with pytest.raises(CredentialError) as info:
        store.names()
    errors.append(info.value)
    store.path.chmod(0o600)
    # a refused OAuth token (refresh attempted with the sentinel refresh token)
    from cmtoolkit.connection import client_for_credential

    with client_for_credential("stale", store=store) as cm, pytest.raises(CmToolkitError) as info:
        cm.clients()
    errors.append(info.value)
    for exc in errors:
        seen.append((f"{type(exc).__name__}", f"{exc} {exc!r} {exc.args}"))

    # the status of a connection whose credential is refused, and one that works
    conn = load_connection(ws / "connections" / "stale.yaml")
    with client_for_credential("stale", store=store) as cm:
        status = connection_status(conn, client=cm)
    assert status.errors
    seen.append(("status", repr(status) + str(status.to_dict())))

    # the CLI: auth status, status (human and JSON), at DEBUG
    for argv in (
        ["-vv", "auth", "status"],
        ["-vv", "auth", "status", "--json"],
        ["-vv", "status", "News default", "--workspace", str(ws)],
        ["-vv", "status", "News stale", "--workspace", str(ws), "--json"],
        ["-vv", "status", "News env:TEST_CM_KEY_VAR", "--workspace", str(ws)],
    ):
        main(argv)
        out, err = capsys.readouterr()
        seen.append((" ".join(argv), out + err))

    # the CLI: OAuth login, the fake browser answering the emulator's authorize page
    def browser(url: str) -> bool:
        page = requests.get(url, timeout=5).text
        fields = dict(
            part.split('" value="')
            for part in (
                chunk.split('name="', 1)[1].split('">', 1)[0] for chunk in page.split("<input")[1:]
            )
        )
        requests.post(emu.origin + "/oauth", data={**fields, "decision": "allow"}, timeout=5)
        return True

    monkeypatch.setattr("webbrowser.open", browser)
    monkeypatch.setenv("APP_SECRET", CLIENT_SECRET)
    argv = [
        "-vv", "auth", "login", "--oauth", "--credential", "team", "--client-id", "424242",
        "--client-secret-env", "APP_SECRET", "--redirect-uri", app.redirect_uri, "--timeout", "10",
    ]  # fmt: skip
    assert main(argv) == 0
    out, err = capsys.readouterr()
    seen.append(("auth login --oauth", out + err))
    issued = store.get("team")
    assert isinstance(issued, OAuthCredential) and issued.client_secret == Secret(CLIENT_SECRET)
    monkeypatch.setenv("MY_KEY", API_KEY)
    assert main(["-vv", "auth", "login", "--api-key-env", "MY_KEY", "--credential", "k2"]) == 0
    out, err = capsys.readouterr()
    seen.append(("auth login --api-key-env", out + err))

    outputs = dict(seen)
    assert "stale: OAuth, no expiry recorded, ✖ refused" in outputs["-vv auth status"]
    assert "default: API key, ✔ works" in outputs["-vv auth status"]
    assert "✔ import" in outputs[f"-vv status News default --workspace {ws}"]
    assert "Checked: campaign_monitor" in outputs[f"-vv status News default --workspace {ws}"]
    assert '"import_ready": false' in outputs[f"-vv status News stale --workspace {ws} --json"]
    assert "✔ connected: credential 'team'" in outputs["auth login --oauth"]
    assert "/oauth?" in outputs["auth login --oauth"]  # the authorize URL was shown

    seen.append(("DEBUG log", caplog.text))
    for where, text in seen:
        assert_clean(text, where)
        for token in (issued.access_token.reveal(), issued.refresh_token.reveal()):
            assert token not in text, f"{where} leaks an issued token"
    # the secrets are in the store file, which is where they belong
    assert API_KEY in store.path.read_text()
    assert any("DEBUG" in r.levelname for r in caplog.records)
