"""A saved segment of a list: rule groups evaluated over the list's columns."""

from __future__ import annotations

from dataclasses import dataclass, field
from typing import Any

import numpy as np

from cmtoolkit.emulator.mailing_list import MailingList


@dataclass
class Segment:
    segment_id: str
    list_id: str
    title: str
    rule_groups: list[dict[str, Any]] = field(default_factory=list)

    def members(self, lst: MailingList) -> np.ndarray:
        """Rows matching every rule group (rules in a group are OR-ed, as in CM).

        Supported clauses: ``EQUALS v`` / ``CONTAINS v`` / ``PROVIDED`` / ``NOT PROVIDED`` on
        ``EmailAddress``, ``Name`` or a custom field ``[tag]``; unsupported rules match nobody.
        """
        n = len(lst)
        result = np.ones(n, dtype=bool)
        for group in self.rule_groups:
            any_rule = np.zeros(n, dtype=bool)
            for rule in group.get("Rules", []):
                any_rule |= _rule_mask(lst, rule.get("RuleType", ""), rule.get("Clause", ""))
            result &= any_rule
        return np.nonzero(result)[0]


def _rule_mask(lst: MailingList, rule_type: str, clause: str) -> np.ndarray:
    if rule_type == "EmailAddress":
        column: list[Any] = lst.emails
    elif rule_type == "Name":
        column = lst.names
    else:
        f = lst.resolve_field(rule_type)
        if f is None:
            return np.zeros(len(lst), dtype=bool)
        column = lst.values[f.name]
    op, _, arg = clause.partition(" ")
    op = op.upper()
    if clause.upper() == "NOT PROVIDED":
        return np.array([not v for v in column], dtype=bool)
    arg_cf = arg.casefold()

    def values(v: Any) -> tuple[str, ...]:
        if not v:
            return ()
        return v if isinstance(v, tuple) else (v,)

    if op == "PROVIDED":
        return np.array([bool(v) for v in column], dtype=bool)
    if op == "EQUALS":
        return np.array([any(x.casefold() == arg_cf for x in values(v)) for v in column], bool)
    if op == "CONTAINS":
        return np.array([any(arg_cf in x.casefold() for x in values(v)) for v in column], bool)
    return np.zeros(len(lst), dtype=bool)
