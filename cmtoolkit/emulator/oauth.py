"""The OAuth endpoints over HTTP: the authorize page (``/oauth``) and the token endpoint.

The rules (codes, tokens, refresh) live in :mod:`cmtoolkit.emulator.auth`; this module turns
them into pages, redirects and JSON answers.
"""

from __future__ import annotations

import html
from urllib.parse import parse_qsl, urlencode

import orjson

from cmtoolkit.emulator.auth import AuthState, OAuthProblem
from cmtoolkit.emulator.handler import Answer

HTML = "text/html; charset=utf-8"


def authorize(
    auth: AuthState, method: str, query: dict[str, str], body: bytes, now: float
) -> Answer:
    """GET shows the consent page; POST (its form) redirects back with a code or an error."""
    params = query
    if method == "POST":
        params = {k.lower(): v for k, v in parse_qsl(body.decode("utf-8", "replace"))}
    elif method != "GET":
        return Answer(405)
    client_id = params.get("client_id", "")
    redirect_uri = params.get("redirect_uri", "")
    scope = params.get("scope", "")
    st = params.get("state", "")
    try:
        app = auth.check_authorize(client_id, redirect_uri)
    except OAuthProblem as exc:
        page = f"<!doctype html><title>Error</title><h1>{exc.error}</h1><p>{exc.description}"
        return Answer(400, page.encode(), content_type=HTML)
    if method == "GET":
        hidden = "".join(
            f'<input type="hidden" name="{k}" value="{html.escape(v)}">'
            for k, v in (
                ("client_id", client_id),
                ("redirect_uri", redirect_uri),
                ("scope", scope),
                ("state", st),
            )
        )
        page = (
            "<!doctype html><html><head><meta charset='utf-8'>"
            "<title>Authorize application</title></head><body>"
            f"<h1>Allow app {html.escape(app.client_id)} to access your account?</h1>"
            f"<p>Permissions: {html.escape(scope)}</p>"
            f'<form method="post" action="/oauth">{hidden}'
            '<button type="submit" name="decision" value="allow">Allow access</button> '
            '<button type="submit" name="decision" value="deny">Deny</button>'
            "</form></body></html>"
        )
        return Answer(200, page.encode(), content_type=HTML)
    if params.get("decision", "allow") == "allow":
        answer = {"code": auth.grant(client_id, redirect_uri, scope, now)}
    else:
        answer = {"error": "access_denied", "error_description": "The user denied access"}
    if st:
        answer["state"] = st
    sep = "&" if "?" in redirect_uri else "?"
    location = redirect_uri + sep + urlencode(answer)
    return Answer(302, b"", {"Location": location}, content_type="text/plain")


def token_endpoint(auth: AuthState, method: str, body: bytes, now: float) -> Answer:
    """The token endpoint: an authorization code or a refresh token for new tokens."""
    if method != "POST":
        return Answer(405)
    form = dict(parse_qsl(body.decode("utf-8", "replace"), keep_blank_values=True))
    try:
        tokens = auth.token_request(form, now)
    except OAuthProblem as exc:
        data = {"error": exc.error, "error_description": exc.description}
        return Answer(exc.status, orjson.dumps(data))
    return Answer(200, orjson.dumps(tokens))
