"""Authentication: "Connect with Campaign Monitor" (OAuth), an API key, the client, and logout.

Secrets never stay in a widget. Widget values are synced to the frontend and can be saved into
the notebook (DESIGN §8, reference §5), so:

- the API key box is a ``Password`` that syncs only on Enter or blur; the moment a value arrives,
  it is taken out of the widget (the widget is cleared first), checked against Campaign Monitor
  and put in the credential store under the connection's credential name;
- the OAuth app's client secret comes from the environment (``$CMTOOLKIT_OAUTH_CLIENT_SECRET``) or
  from code, and OAuth tokens go straight from the token answer to the credential store;
- the connection keeps only the credential *reference*, as the file does.
"""

from __future__ import annotations

import contextlib
import logging
import os
import threading
from collections.abc import Callable, Mapping
from typing import Any

import ipywidgets as W

from cmtoolkit.campaign_monitor import CampaignMonitor, OAuthApp
from cmtoolkit.connection.login import login_api_key, login_oauth
from cmtoolkit.connection.model import Connection
from cmtoolkit.credentials import (
    DEFAULT_NAME,
    ENV_FALLBACK,
    CredentialStore,
    credential_reference_problem,
)
from cmtoolkit.errors import CmToolkitError, PermissionDenied
from cmtoolkit.secret import Secret
from cmtoolkit.widgets.editor import ConnectionEditor
from cmtoolkit.widgets.html import GREEN, RED, esc
from cmtoolkit.widgets.view import View, set_options

log = logging.getLogger(__name__)

OAUTH_ENV = (
    "CMTOOLKIT_OAUTH_CLIENT_ID",
    "CMTOOLKIT_OAUTH_CLIENT_SECRET",
    "CMTOOLKIT_OAUTH_REDIRECT_URI",
)


def oauth_app_from_env(environ: Mapping[str, str] | None = None) -> OAuthApp | None:
    """The registered OAuth app from ``$CMTOOLKIT_OAUTH_*``, or None when not configured."""
    env = os.environ if environ is None else environ
    client_id, secret, redirect = (env.get(k, "").strip() for k in OAUTH_ENV)
    if not (client_id and secret and redirect):
        return None
    return OAuthApp(client_id=client_id, client_secret=Secret(secret), redirect_uri=redirect)


def verify_api_key(credential: Any) -> None:
    """One call with the key; a client-level key may not list clients, which still proves it."""
    with (
        CampaignMonitor(
            credential.to_auth(), base_url=os.environ.get("CMTOOLKIT_API_URL") or None
        ) as cm,
        contextlib.suppress(PermissionDenied),
    ):
        cm.clients()


class AuthPanel(View):
    """Credential, Connect with Campaign Monitor, API key, client drop-down, Reset Authentication.

    ``oauth_app`` defaults to :func:`oauth_app_from_env`; ``open_browser`` receives the authorize
    URL (default: a link shown in the panel); ``threaded=False`` runs the OAuth flow in the
    caller (tests), otherwise a thread waits for the redirect so the kernel stays responsive.
    """

    def __init__(
        self,
        editor: ConnectionEditor,
        *,
        oauth_app: OAuthApp | None = None,
        open_browser: Callable[[str], Any] | None = None,
        threaded: bool = True,
        timeout: float = 300.0,
        verify: Callable[[Any], Any] | None = verify_api_key,
    ) -> None:
        super().__init__(editor)
        self.oauth_app = oauth_app if oauth_app is not None else oauth_app_from_env()
        self.open_browser = open_browser or self._show_link
        self.threaded = threaded
        self.timeout = timeout
        self.verify = verify
        self.thread: threading.Thread | None = None
        self.credential = W.Text(
            description="Credential",
            continuous_update=False,
            placeholder="default, a stored name, or env:VARNAME",
            layout=W.Layout(width="360px"),
        )
        self.credential.observe(self._credential_changed, "value")
        self.connect_button = W.Button(
            description="Connect with Campaign Monitor", icon="plug", layout=W.Layout(width="260px")
        )
        self.connect_button.on_click(lambda _: self.connect())
        self.api_key = W.Password(
            description="API key",
            placeholder="paste, then Enter: moved to the credential store",
            continuous_update=False,
            layout=W.Layout(width="420px"),
        )
        self.api_key.observe(self._api_key_entered, "value")
        self.api_key_button = W.Button(description="Use API key", icon="key")
        self.api_key_button.on_click(lambda _: self._take_api_key(self.api_key.value))
        self.client = W.Dropdown(description="Client", options=[], layout=W.Layout(width="420px"))
        self.client.observe(self._client_changed, "value")
        self.reset_button = W.Button(
            description="Reset Authentication",
            icon="sign-out",
            button_style="warning",
            layout=W.Layout(width="210px", min_width="210px"),
        )
        self.reset_button.on_click(lambda _: self.reset())
        self.link = W.HTML()
        self.state = W.HTML()
        self.children = [
            self.credential,
            W.HBox([self.connect_button, self.link]),
            W.HBox([self.api_key, self.api_key_button]),
            self.client,
            W.HBox([self.reset_button, self.state]),
            self.message,
        ]
        self.start()

    @property
    def store(self) -> CredentialStore:
        return self.editor.credentials or CredentialStore()

    @property
    def credential_name(self) -> str:
        """Where a login is stored: the connection's name, or ``default`` for an env reference."""
        ref = self.editor.model.campaign_monitor.credential
        return DEFAULT_NAME if ref.startswith("env:") else ref

    # --- view -----------------------------------------------------------------------------------

    def redraw(self, model: Connection) -> None:
        ref = model.campaign_monitor.credential
        self.credential.value = ref
        self.connect_button.disabled = self.oauth_app is None
        self.connect_button.tooltip = (
            "log in to Campaign Monitor and allow access"
            if self.oauth_app is not None
            else "set CMTOOLKIT_OAUTH_CLIENT_ID, CMTOOLKIT_OAUTH_CLIENT_SECRET and "
            "CMTOOLKIT_OAUTH_REDIRECT_URI (your registered app) to connect with OAuth"
        )
        self.reset_button.disabled = ref.startswith("env:")
        try:
            clients = self.editor.clients()
        except CmToolkitError as exc:
            set_options(self.client, [], model.campaign_monitor.client_id)
            self.state.value = f'<span style="color:{RED}">✖ not connected: {esc(exc)}</span>'
            return
        options = [(f"{c.name} ({c.client_id})", c.client_id) for c in clients]
        set_options(self.client, options, model.campaign_monitor.client_id)
        source = self._describe(ref)
        self.state.value = (
            f'<span style="color:{GREEN}">✔ connected with {esc(source)}; '
            f"{len(clients)} client(s) visible</span>"
        )

    def _describe(self, ref: str) -> str:
        if ref.startswith("env:"):
            return f"the API key in ${ref[4:]}"
        found = self.store.find(ref)
        if found is None and ref == DEFAULT_NAME and os.environ.get(ENV_FALLBACK):
            return f"the API key in ${ENV_FALLBACK}"
        kind = {"api_key": "API key", "oauth": "OAuth"}.get(getattr(found, "kind", ""), "")
        return f"credential {ref!r} ({kind})"

    # --- credential reference -------------------------------------------------------------------

    def _credential_changed(self, change: dict[str, Any]) -> None:
        if self.updating:
            return
        ref = change["new"].strip()
        problem = credential_reference_problem(ref)
        if problem:
            # It may be a pasted key: out of the widget first, then explain.
            with self.quiet():
                self.credential.value = self.editor.model.campaign_monitor.credential
            self.show_error(f"not a credential reference: {problem}")
            return
        self.message.value = ""
        self.editor.edit_campaign_monitor(credential=ref)

    def _client_changed(self, change: dict[str, Any]) -> None:
        if not self.updating and change["new"]:
            self.editor.edit_campaign_monitor(client_id=change["new"])

    # --- API key --------------------------------------------------------------------------------

    def _api_key_entered(self, change: dict[str, Any]) -> None:
        if change["new"]:
            self._take_api_key(change["new"])

    def _take_api_key(self, value: str) -> None:
        """Move a typed API key out of the widget and into the credential store."""
        key = Secret(value.strip())
        with self.quiet():
            self.api_key.value = ""  # before anything can fail: the key never stays here
        if not key:
            return
        name = self.credential_name
        try:
            login_api_key(key, name=name, store=self.store, verify=self.verify)
        except CmToolkitError as exc:
            self.show_error(f"API key not saved: {exc}")
            return
        except Exception as exc:  # the type only: a message could quote the key
            self.show_error(f"API key not saved: unexpected {type(exc).__name__}")
            return
        self.show_info(f"API key saved as credential {name!r} in {self.store.path}")
        self._use_credential(name)

    def _use_credential(self, name: str) -> None:
        if self.editor.model.campaign_monitor.credential != name:
            self.editor.edit_campaign_monitor(credential=name)
        self.editor.credentials_changed()

    # --- OAuth ----------------------------------------------------------------------------------

    def _show_link(self, url: str) -> None:
        self.link.value = (
            f'<a href="{esc(url)}" target="_blank" rel="noopener">Open Campaign Monitor and '
            "choose <b>Allow access</b></a>"
        )

    def connect(self) -> None:
        """Run the authorization-code flow (in a thread unless ``threaded=False``)."""
        if self.oauth_app is None:
            self.show_error(
                "no OAuth app configured: set CMTOOLKIT_OAUTH_CLIENT_ID, "
                "CMTOOLKIT_OAUTH_CLIENT_SECRET and CMTOOLKIT_OAUTH_REDIRECT_URI, or paste an "
                "API key below"
            )
            return
        self.show_info("waiting for Campaign Monitor…")
        if self.threaded:
            self.thread = threading.Thread(target=self._oauth, daemon=True)
            self.thread.start()
        else:
            self._oauth()

    def _oauth(self) -> None:
        app = self.oauth_app
        if app is None:  # the button checked already; a thread must not fail unseen
            return
        name = self.credential_name
        try:
            login_oauth(
                app,
                name=name,
                store=self.store,
                open_browser=self.open_browser,
                timeout=self.timeout,
                base_url=os.environ.get("CMTOOLKIT_API_URL") or None,
            )
        except CmToolkitError as exc:
            self.link.value = ""
            self.show_error(f"not connected: {exc}")
            return
        except Exception as exc:  # in a thread: say so instead of dying unseen (type only)
            log.exception("the OAuth flow failed")
            self.link.value = ""
            self.show_error(f"not connected: unexpected {type(exc).__name__}; see the log")
            return
        self.link.value = ""
        self.show_info(f"connected: OAuth tokens saved as credential {name!r}")
        self._use_credential(name)

    # --- logout ---------------------------------------------------------------------------------

    def reset(self) -> None:
        """Reset Authentication: forget the stored credential (the connection keeps its name)."""
        ref = self.editor.model.campaign_monitor.credential
        if ref.startswith("env:"):
            self.show_error(f"{ref} is an environment variable: unset it outside the notebook")
            return
        removed = self.store.remove(ref)
        self.show_info(
            f"credential {ref!r} removed; connect again or paste an API key"
            if removed
            else f"no credential {ref!r} was stored"
        )
        self.editor.credentials_changed()
