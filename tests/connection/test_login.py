"""The OAuth redirect catcher, API-key login, and end to end against the emulator."""

from __future__ import annotations

import re
import socket
from collections.abc import Iterator
from html.parser import HTMLParser
from pathlib import Path
from urllib.parse import parse_qs, urlencode, urlsplit

import pytest
import requests

from cmtoolkit.campaign_monitor import OAuthApp, OAuthAuth
from cmtoolkit.connection import client_for_credential
from cmtoolkit.connection.login import (
    RedirectCatcher,
    login_api_key,
    login_oauth,
    run_oauth_flow,
)
from cmtoolkit.credentials import ApiKeyCredential, CredentialStore, OAuthCredential, resolve
from cmtoolkit.errors import CredentialError
from cmtoolkit.secret import Secret


def free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


def make_app() -> OAuthApp:
    return OAuthApp("123456", Secret("client-secret-x"), f"http://127.0.0.1:{free_port()}/callback")


def fake_authorize(app, scope, state, *, base_url=None) -> str:  # type: ignore[no-untyped-def]
    return "https://auth.example/oauth?" + urlencode(
        {
            "client_id": app.client_id,
            "redirect_uri": app.redirect_uri,
            "scope": ",".join(scope),
            "state": state,
        }
    )


def redirect_browser(**extra: str):  # type: ignore[no-untyped-def]
    """A fake browser: the user allowed access, the provider redirects to the catcher."""
    seen: list[int] = []

    def browse(url: str) -> None:
        q = {k: v[0] for k, v in parse_qs(urlsplit(url).query).items()}
        answer = {"code": "the-code", "state": q["state"], **extra}
        r = requests.get(q["redirect_uri"] + "?" + urlencode(answer), timeout=5)
        seen.append(r.status_code)

    browse.seen = seen  # type: ignore[attr-defined]
    return browse


def test_catcher_returns_the_code_and_exchanges_it() -> None:
    app = make_app()
    exchanged: list[tuple[str, str]] = []

    def exchange(app_, code, *, base_url=None):  # type: ignore[no-untyped-def]
        exchanged.append((app_.client_id, code.reveal()))
        return {"access_token": "at", "refresh_token": "rt", "expires_in": 60}

    browser = redirect_browser()
    tokens = run_oauth_flow(
        app, open_browser=browser, timeout=5, authorize=fake_authorize, exchange=exchange
    )
    assert tokens["access_token"] == "at"
    assert exchanged == [("123456", "the-code")]
    assert browser.seen == [200]


def test_state_mismatch_is_refused() -> None:
    browser = redirect_browser(state="forged")
    with pytest.raises(CredentialError, match="state that this login did not send"):
        run_oauth_flow(
            make_app(), open_browser=browser, timeout=5, authorize=fake_authorize,
            exchange=lambda *a, **k: pytest.fail("must not exchange"),
        )  # fmt: skip


def test_denied_access() -> None:
    browser = redirect_browser(error="access_denied")
    with pytest.raises(CredentialError, match=r"did not grant access \(access_denied\)"):
        run_oauth_flow(
            make_app(), open_browser=browser, timeout=5, authorize=fake_authorize,
            exchange=lambda *a, **k: pytest.fail("must not exchange"),
        )  # fmt: skip
    assert browser.seen == [400]


def test_timeout_when_the_browser_never_comes_back() -> None:
    with pytest.raises(CredentialError, match=r"no answer from the browser within 0\.05 s"):
        run_oauth_flow(
            make_app(), open_browser=lambda url: None, timeout=0.05, authorize=fake_authorize,
            exchange=lambda *a, **k: pytest.fail("must not exchange"),
        )  # fmt: skip


def test_catcher_frees_its_port_and_ignores_other_paths() -> None:
    app = make_app()
    with RedirectCatcher(app.redirect_uri) as catcher:
        base = app.redirect_uri.rsplit("/", 1)[0]
        assert requests.get(base + "/favicon.ico", timeout=5).status_code == 404
        requests.get(app.redirect_uri + "?code=c&state=s", timeout=5)
        assert catcher.wait(1) == {"code": "c", "state": "s"}
    with RedirectCatcher(app.redirect_uri):  # the port is free again
        pass


@pytest.mark.parametrize(
    "uri", ["https://127.0.0.1:8000/cb", "http://example.com:8000/cb", "http://127.0.0.1/cb"]
)
def test_catcher_needs_a_loopback_redirect_with_port(uri: str) -> None:
    with pytest.raises(CredentialError, match="loopback address with a port"):
        RedirectCatcher(uri)


def test_login_api_key_verifies_before_saving(tmp_path: Path) -> None:
    store = CredentialStore(tmp_path / "c.json")

    def refuse(credential: ApiKeyCredential) -> None:
        raise CredentialError("refused")

    with pytest.raises(CredentialError):
        login_api_key("k-1", name="x", store=store, verify=refuse)
    assert store.names() == []
    checked: list[ApiKeyCredential] = []
    login_api_key(" k-1 ", name="x", store=store, verify=checked.append)
    assert checked == [ApiKeyCredential(Secret("k-1"))]
    assert store.get("x") == ApiKeyCredential(Secret("k-1"))
    with pytest.raises(CredentialError, match="empty"):
        login_api_key("  ", store=store)


# --- against the emulator -----------------------------------------------------------------------


class _Form(HTMLParser):
    def __init__(self) -> None:
        super().__init__()
        self.action = ""
        self.fields: dict[str, str] = {}

    def handle_starttag(self, tag: str, attrs: list[tuple[str, str | None]]) -> None:
        a = dict(attrs)
        if tag == "form":
            self.action = a.get("action") or ""
        if tag == "input" and a.get("type") == "hidden":
            self.fields[a["name"] or ""] = a.get("value") or ""


def emulator_browser(origin: str, log: list[str]):  # type: ignore[no-untyped-def]
    """A fake browser: open the authorize page, press 'Allow access', follow the redirect."""

    def browse(url: str) -> None:
        page = requests.get(url, timeout=5)
        page.raise_for_status()
        assert "Allow access" in page.text
        form = _Form()
        form.feed(page.text)
        answer = requests.post(
            origin + form.action, data={**form.fields, "decision": "allow"}, timeout=5
        )  # follows the 302 to the redirect catcher
        log.append(f"{answer.status_code} {answer.url.split('?')[0]}")

    return browse


@pytest.fixture
def emu() -> Iterator[object]:
    emulator_module = pytest.importorskip("cmtoolkit.emulator")
    app = make_app()
    emulator = emulator_module.Emulator(seed_size=5, oauth_apps=[app])
    emulator.start()
    emulator.app = app  # type: ignore[attr-defined]
    try:
        yield emulator
    finally:
        emulator.stop()


def test_oauth_login_end_to_end_against_the_emulator(emu, tmp_path: Path) -> None:  # type: ignore[no-untyped-def]
    store = CredentialStore(tmp_path / "credentials.json")
    log: list[str] = []
    credential = login_oauth(
        emu.app,
        name="team",
        store=store,
        open_browser=emulator_browser(emu.origin, log),
        timeout=10,
        base_url=emu.base_url,
    )
    assert log == [f"200 {emu.app.redirect_uri}"]
    assert isinstance(credential, OAuthCredential)
    assert store.get("team") == credential
    assert credential.client_id == "123456" and credential.redirect_uri == emu.app.redirect_uri
    assert isinstance(resolve("team", store=store), OAuthAuth)
    with client_for_credential("team", store=store, base_url=emu.base_url) as cm:
        assert [c.client_id for c in cm.clients()] == [emu.client_id]


def test_refreshed_tokens_are_saved_against_the_emulator(emu, tmp_path: Path) -> None:  # type: ignore[no-untyped-def]
    store = CredentialStore(tmp_path / "credentials.json")
    login_oauth(
        emu.app, name="team", store=store, open_browser=emulator_browser(emu.origin, []),
        timeout=10, base_url=emu.base_url,
    )  # fmt: skip
    before = store.get("team")
    emu.advance(2 * 1209600)  # the access token expires: code 121, then a refresh
    with client_for_credential("team", store=store, base_url=emu.base_url) as cm:
        assert cm.clients()
    after = store.get("team")
    assert isinstance(after, OAuthCredential)
    assert after.access_token != before.access_token
    assert after.client_secret == before.client_secret  # app settings kept
    with client_for_credential("team", store=store, base_url=emu.base_url) as cm:
        assert cm.clients()  # the saved token works


def test_api_key_credential_against_the_emulator(emu, tmp_path: Path) -> None:  # type: ignore[no-untyped-def]
    store = CredentialStore(tmp_path / "credentials.json")
    store.put("default", ApiKeyCredential(Secret(emu.api_key)))
    with client_for_credential("default", store=store, base_url=emu.base_url) as cm:
        assert re.fullmatch(r"[0-9a-f]{32}", cm.clients()[0].client_id)
