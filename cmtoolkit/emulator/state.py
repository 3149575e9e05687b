"""Persisting an emulated account: a pickle-free JSON snapshot (orjson), written atomically.

Lists are stored column by column, so the snapshot of a large account stays compact and loads in
one pass; multi-select values (tuples in memory) are JSON arrays.
"""

from __future__ import annotations

import contextlib
import os
from array import array
from pathlib import Path
from typing import Any

import orjson

from cmtoolkit.emulator.account import Account, Client, Suppressed
from cmtoolkit.emulator.activity import Campaign
from cmtoolkit.emulator.custom_field import CustomField
from cmtoolkit.emulator.mailing_list import MailingList
from cmtoolkit.emulator.segment import Segment
from cmtoolkit.errors import ConfigurationError

FORMAT = "cmtoolkit-emulator-state/1"


def dump_account(account: Account) -> dict[str, Any]:
    return {
        "clients": [
            {
                "client_id": c.client_id,
                "name": c.name,
                "api_key": c.api_key,
                "lists": [_dump_list(lst) for lst in c.lists],
                "segments": [s.__dict__ for s in c.segments],
                "suppression": [[s.email, s.reason, s.date] for s in c.suppression.values()],
                "campaigns": [x.to_json() for x in c.campaigns],
            }
            for c in account.clients
        ]
    }


def _dump_list(lst: MailingList) -> dict[str, Any]:
    return {
        "list_id": lst.list_id,
        "title": lst.title,
        "confirmed_opt_in": lst.confirmed_opt_in,
        "unsubscribe_page": lst.unsubscribe_page,
        "confirmation_success_page": lst.confirmation_success_page,
        "unsubscribe_setting": lst.unsubscribe_setting,
        "add_unsubscribes_to_supp_list": lst.add_unsubscribes_to_supp_list,
        "fields": [f.__dict__ for f in lst.fields],
        "webhooks": lst.webhooks,
        "emails": lst.emails,
        "names": lst.names,
        "states": lst.states.tolist(),
        "dates": lst.dates.tolist(),
        "joined": lst.joined.tolist(),
        "consent": lst.consent.tolist(),
        "reads": lst.reads.tolist(),
        "mobile": {str(k): v for k, v in lst.mobile.items()},
        "values": {f.name: lst.values[f.name] for f in lst.fields},
    }


def load_account(data: dict[str, Any], api_key: str) -> Account:
    """The account of a snapshot; :class:`ConfigurationError` when its content is damaged."""
    try:
        return _load_account(data, api_key)
    except (KeyError, TypeError, ValueError, AttributeError) as exc:
        raise ConfigurationError(
            f"the emulator state's account is damaged ({type(exc).__name__}: {exc}); remove the "
            "--state file to start again from a fresh seed"
        ) from None


def _load_account(data: dict[str, Any], api_key: str) -> Account:
    account = Account(api_key=api_key)
    for c in data["clients"]:
        client = Client(c["client_id"], c["name"], c["api_key"])
        for d in c["lists"]:
            client.lists.append(_load_list(d))
        client.segments = [Segment(**s) for s in c["segments"]]
        for email, reason, date in c["suppression"]:
            client.suppression[email.lower()] = Suppressed(email, reason, date)
        client.campaigns = [Campaign.from_json(x) for x in c.get("campaigns", [])]
        account.clients.append(client)
    return account


def _load_list(d: dict[str, Any]) -> MailingList:
    lst = MailingList(
        d["list_id"],
        d["title"],
        confirmed_opt_in=d["confirmed_opt_in"],
        unsubscribe_setting=d["unsubscribe_setting"],
    )
    lst.unsubscribe_page = d["unsubscribe_page"]
    lst.confirmation_success_page = d["confirmation_success_page"]
    lst.add_unsubscribes_to_supp_list = d["add_unsubscribes_to_supp_list"]
    lst.fields = [CustomField(**f) for f in d["fields"]]
    lst.webhooks = d["webhooks"]
    lst.emails = d["emails"]
    lst.names = d["names"]
    lst.states = array("b", d["states"])
    lst.dates = array("q", d["dates"])
    lst.joined = array("q", d["joined"])
    lst.consent = array("b", d["consent"])
    lst.reads = array("b", d["reads"])
    lst.mobile = {int(k): v for k, v in d["mobile"].items()}
    lst.values = {
        name: [tuple(v) if isinstance(v, list) else v for v in column]
        for name, column in d["values"].items()
    }
    lst.index = {e.lower(): row for row, e in enumerate(lst.emails)}
    lst.touch()
    return lst


def save_state(path: str | os.PathLike[str], payload: dict[str, object]) -> None:
    target = Path(path)
    target.parent.mkdir(parents=True, exist_ok=True)
    tmp = target.with_name(target.name + ".tmp")
    tmp.write_bytes(orjson.dumps({"format": FORMAT, **payload}))
    os.replace(tmp, target)
    with contextlib.suppress(OSError):
        os.chmod(target, 0o600)  # the snapshot holds the client API key and tokens


def load_state(path: str | os.PathLike[str]) -> dict[str, Any] | None:
    """The snapshot in ``path`` (None when there is none yet); :class:`ConfigurationError` for a
    file that is not one (so ``--state`` never overwrites a file it did not write)."""
    target = Path(path)
    if not target.exists():
        return None
    what = (
        f"--state {target} is not an emulator state file ({FORMAT}); give a new file name (the "
        "emulator creates it) or the file an earlier `emulator serve --state` wrote"
    )
    try:
        data = orjson.loads(target.read_bytes())
    except orjson.JSONDecodeError:
        raise ConfigurationError(f"{what}: it is not JSON") from None
    except OSError as exc:
        raise ConfigurationError(f"cannot read --state {target}: {exc.strerror or exc}") from None
    if not isinstance(data, dict) or data.get("format") != FORMAT:
        raise ConfigurationError(what)
    account = data.get("account")
    if not isinstance(account, dict) or not isinstance(account.get("clients"), list):
        raise ConfigurationError(f"{what}: its account is missing or damaged")
    return data
