"""Subscriber resources: paged reads by state, one subscriber, add, update, unsubscribe,
delete, and the batch import with its per-address failures."""

from __future__ import annotations

import re
from typing import Any

from cmtoolkit.emulator.api.request import Ctx, Result, as_bool, lower_keys
from cmtoolkit.emulator.api.resource import Resources
from cmtoolkit.emulator.api_error import ApiError
from cmtoolkit.emulator.custom_field import CustomField
from cmtoolkit.emulator.mailing_list import MailingList
from cmtoolkit.emulator.subscriber import (
    ACTIVE,
    BOUNCED,
    DELETED,
    STATE_CODE,
    UNCONFIRMED,
    UNSUBSCRIBED,
    valid_email,
)

NOT_ADDED = {
    UNSUBSCRIBED: (206, "Subscriber is unsubscribed. Subscriber not added."),
    BOUNCED: (207, "Subscriber is bounced. Subscriber not added."),
    DELETED: (205, "Subscriber is deleted. Subscriber not added."),
}
IN_SUPPRESSION = (204, "Subscriber is in the suppression list. Subscriber not added.")
MAX_IMPORT = 1000


class SubscriberResources(Resources):
    """A list's subscribers: paged reads, single changes, batch imports."""

    def list_subscribers(self, ctx: Ctx, list_id: str, state: str) -> Result:
        _, lst = self._list(ctx, list_id)
        return self.pages.page(ctx, lst, (STATE_CODE[state.capitalize()],))

    def _row(self, ctx: Ctx, lst: MailingList) -> int:
        email = (ctx.q("email") or "").strip()
        row = lst.row_of(email) if email else None
        if row is None:
            raise ApiError(400, 203, "Subscriber not in list or has already been removed.")
        return row

    def get_subscriber(self, ctx: Ctx, list_id: str) -> Result:
        _, lst = self._list(ctx, list_id)
        row = self._row(ctx, lst)
        tracking = as_bool(ctx.q("includetrackingpreference") or "")
        return Result(200, lst.records([row], tracking=tracking, details=True)[0])

    def add_subscriber(self, ctx: Ctx, list_id: str) -> Result:
        c, lst = self._list(ctx, list_id)
        body = ctx.obj()
        email = str(body.get("emailaddress") or "").strip()
        if not valid_email(email):
            raise ApiError(400, 1, "Invalid Email Address")
        consent = _consent(body, required=True)
        mobile = _mobile(body)
        resubscribe = as_bool(body.get("resubscribe", False))
        row = lst.row_of(email)
        suppressed = email.lower() in c.suppression
        if not resubscribe:
            if suppressed:
                raise ApiError(400, *IN_SUPPRESSION)
            if row is not None and lst.states[row] in NOT_ADDED:
                raise ApiError(400, *NOT_ADDED[lst.states[row]])
        if row is None:
            state = UNCONFIRMED if lst.confirmed_opt_in else ACTIVE
            row = lst.append(email, "", state, ctx.now)
        elif lst.states[row] != ACTIVE and lst.states[row] != UNCONFIRMED:
            lst.set_state(row, ACTIVE, ctx.now)
        if suppressed:
            c.unsuppress(email)
        _Writer(lst).apply(row, body, consent, mobile)
        return Result(201, lst.emails[row])

    def update_subscriber(self, ctx: Ctx, list_id: str) -> Result:
        _, lst = self._list(ctx, list_id)
        row = self._row(ctx, lst)
        body = ctx.obj()
        new_email = str(body.get("emailaddress") or lst.emails[row]).strip()
        if not valid_email(new_email):
            raise ApiError(400, 211, "Invalid New Email Address")
        other = lst.row_of(new_email)
        if other is not None and other != row:
            raise ApiError(400, 201, "New Email Address is already subscribed to the list")
        consent = _consent(body, required=True)
        mobile = _mobile(body)
        if new_email != lst.emails[row]:
            del lst.index[lst.emails[row].lower()]
            lst.emails[row] = new_email
            lst.index[new_email.lower()] = row
            lst.touch()
        if as_bool(body.get("resubscribe", False)) and lst.states[row] in NOT_ADDED:
            lst.set_state(row, ACTIVE, ctx.now)
        _Writer(lst).apply(row, body, consent, mobile)
        return Result(200)

    def unsubscribe(self, ctx: Ctx, list_id: str) -> Result:
        c, lst = self._list(ctx, list_id)
        email = str(ctx.obj().get("emailaddress") or "").strip()
        row = lst.row_of(email) if email else None
        if row is None:
            raise ApiError(400, 203, "Subscriber not in list or has already been removed.")
        targets = c.lists if lst.unsubscribe_setting == "AllClientLists" else [lst]
        for target in targets:
            r = target.row_of(email)
            if r is not None and target.states[r] in (ACTIVE, UNCONFIRMED):
                target.set_state(r, UNSUBSCRIBED, ctx.now)
        if lst.add_unsubscribes_to_supp_list:
            c.suppress(lst.emails[row], "Unsubscribed", ctx.now)
        return Result(200)

    def delete_subscriber(self, ctx: Ctx, list_id: str) -> Result:
        _, lst = self._list(ctx, list_id)
        row = self._row(ctx, lst)
        lst.set_state(row, DELETED, ctx.now)
        return Result(200)

    def import_subscribers(self, ctx: Ctx, list_id: str) -> Result:
        c, lst = self._list(ctx, list_id)
        body = ctx.obj()
        items = body.get("subscribers")
        if not isinstance(items, list) or not items:
            raise ApiError(400, 212, "No subscribers were provided in this batch")
        if len(items) > MAX_IMPORT:
            raise ApiError(
                400,
                209,
                "Too many subscribers in this batch. You can only add 1000 subscribers in one call",
            )
        resubscribe = as_bool(body.get("resubscribe", False))
        failures: list[dict[str, Any]] = []
        seen: dict[str, bool] = {}  # lower email -> already counted as failed
        duplicates: list[str] = []
        duplicate_set: set[str] = set()
        existing = new = 0
        writer = _Writer(lst)
        for raw in items:
            item = lower_keys(raw) if isinstance(raw, dict) else {}
            email = str(item.get("emailaddress") or "").strip()
            lower = email.lower()
            if lower in seen and lower not in duplicate_set:
                duplicate_set.add(lower)
                duplicates.append(email)
            if not valid_email(email):
                if lower not in seen:
                    failures.append(_failure(email, 1, "Invalid Email Address"))
                seen.setdefault(lower, True)
                continue
            try:
                consent = _consent(item, required=False)
            except ApiError as exc:
                if lower not in seen:
                    failures.append(_failure(email, exc.code, exc.message))
                seen.setdefault(lower, True)
                continue
            first = lower not in seen
            seen[lower] = False
            row = lst.row_of(email)
            if first:
                if row is None:
                    new += 1
                else:
                    existing += 1
            if lower in c.suppression and not resubscribe:
                if first:
                    failures.append(_failure(email, *IN_SUPPRESSION))
                if row is None:
                    new -= 1 if first else 0
                continue
            if row is None:
                row = lst.append(email, "", ACTIVE, ctx.now)
            else:
                state = lst.states[row]
                if state in NOT_ADDED and not resubscribe:
                    if first:
                        failures.append(_failure(email, *NOT_ADDED[state]))
                elif state != ACTIVE:
                    lst.set_state(row, ACTIVE, ctx.now)
            if lower in c.suppression:
                c.unsuppress(email)
            writer.apply(row, item, consent, _mobile(item, strict=False))
        if as_bool(body.get("restartsubscriptionbasedautoresponders", False)):
            restarts = c.autoresponder_restarts  # one failure at most per unique address
            restarts[list_id] = restarts.get(list_id, 0) + len(seen) - len(failures)
        result = {
            "FailureDetails": failures,
            "TotalUniqueEmailsSubmitted": len(seen),
            "TotalExistingSubscribers": existing,
            "TotalNewSubscribers": new,
            "DuplicateEmailsInSubmission": duplicates,
        }
        if failures:
            raise ApiError(400, 210, "Subscriber Import had some failures", result_data=result)
        return Result(201, result)


def _failure(email: str, code: int, message: str) -> dict[str, Any]:
    return {"EmailAddress": email, "Code": code, "Message": message}


def _consent(body: dict[str, Any], *, required: bool) -> int | None:
    """ConsentToTrack as a stored code (1 Yes, 2 No), None for Unchanged/absent."""
    value = body.get("consenttotrack")
    if value is None or value == "":
        if required:
            raise ApiError(400, 214, "Please provide a consent to track value")
        return None
    text = str(value).strip().lower()
    if text not in ("yes", "no", "unchanged"):
        raise ApiError(400, 215, "Please provide a valid consent to track value")
    return {"yes": 1, "no": 2}.get(text)


def _mobile(body: dict[str, Any], strict: bool = True) -> str | None:
    value = body.get("mobilenumber")
    if not value:
        return None
    text = str(value).strip()
    if not re.fullmatch(r"\+[1-9]\d{6,14}", text):
        if strict:
            raise ApiError(400, 220, "Invalid mobile number")
        return None
    return text


#: A custom field item's keys as documented (any other spelling is lower-cased first).
_FIELD_ITEM_KEYS = frozenset(("Key", "Value", "Clear"))


class _Writer:
    """Writes the name, consent, mobile and custom fields of add/update/import items to a list.

    One per request: an import's 1000 items repeat a few keys and options thousands of times, so
    each distinct key is resolved, and each distinct value of a typed field normalised, once."""

    def __init__(self, lst: MailingList) -> None:
        self.lst = lst
        self._fields: dict[str, CustomField | None] = {}
        self._values: dict[tuple[str, str], str | None] = {}
        self._orders: dict[tuple[str, tuple[str, ...]], tuple[str, ...]] = {}

    def field(self, key: object) -> CustomField | None:
        if not isinstance(key, str):
            return None
        if key not in self._fields:
            self._fields[key] = self.lst.resolve_field(key)
        return self._fields[key]

    def normalise(self, f: CustomField, value: object) -> str | None:
        if f.data_type == "Text" or not isinstance(value, str):
            return f.normalise(value)  # Text values rarely repeat, and strip is all they need
        memo = (f.name, value)
        if memo not in self._values:
            self._values[memo] = f.normalise(value)
        return self._values[memo]

    def options_in_order(self, f: CustomField, chosen: list[str]) -> tuple[str, ...]:
        memo = (f.name, tuple(chosen))
        ordered = self._orders.get(memo)
        if ordered is None:
            ordered = self._orders[memo] = tuple(o for o in f.options if o in chosen)
        return ordered

    def apply(
        self, row: int, body: dict[str, Any], consent: int | None, mobile: str | None
    ) -> None:
        lst = self.lst
        name = body.get("name")
        if isinstance(name, str) and name.strip() and name != lst.names[row]:
            lst.names[row] = name.strip()
            lst.touch()
        if consent is not None:
            lst.consent[row] = consent
        if mobile:
            lst.mobile[row] = mobile
        fields = body.get("customfields") or []
        if not isinstance(fields, list):
            return
        many: dict[str, tuple[CustomField, list[str]]] = {}
        for raw in fields:
            if not isinstance(raw, dict):
                continue
            # Most items are spelt as documented: read those directly (an import has thousands).
            if raw.keys() <= _FIELD_ITEM_KEYS:
                key, value, clear = raw.get("Key"), raw.get("Value"), raw.get("Clear", False)
            else:
                item = lower_keys(raw)
                key, value, clear = item.get("key"), item.get("value"), item.get("clear", False)
            f = self.field(key)
            if f is None:
                continue  # unknown keys are silently ignored, like the real API
            column = lst.values[f.name]
            if clear is True or (clear is not False and as_bool(clear)):
                if f.data_type == "MultiSelectMany" and value not in (None, ""):
                    option = self.normalise(f, value)
                    current = column[row] or ()
                    kept = tuple(o for o in current if o != option)
                    column[row] = kept or None
                    if f.name in many:
                        many[f.name][1][:] = [o for o in many[f.name][1] if o != option]
                else:
                    column[row] = None
                    many.pop(f.name, None)
                continue
            stored = self.normalise(f, value)
            if stored is None:
                continue
            if f.data_type == "MultiSelectMany":
                chosen = many.setdefault(f.name, (f, []))[1]
                if stored not in chosen:
                    chosen.append(stored)
            else:
                column[row] = stored
        for f, chosen in many.values():
            lst.values[f.name][row] = self.options_in_order(f, chosen) or None
