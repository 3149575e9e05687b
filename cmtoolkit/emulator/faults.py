"""Fault injection for the emulator.

SPEC is a ``;``-separated list of rules; a rule is ``KIND`` optionally followed by ``:`` and
``,``-separated options::

    429:p=0.2;500:at=1+3;drop:every=5,method=GET;slow:p=1,delay=0.3,path=/lists/*
    expire:after=100

Kinds:

``429``        HTTP 429 ``{"Code":429,"Message":"Rate limit exceeded"}`` with
               ``X-RateLimit-Limit/Remaining/Reset`` headers (``reset=SECONDS``, default 30)
``429-bare``   the same 429 without any rate-limit header
``500``        HTTP 500 ``{"Code":500,"Message":"Internal Server Error"}``
``503``        HTTP 503 ``{"Code":503,"Message":"Service Unavailable"}``
``drop``       the connection is closed without any response
``slow``       the normal response, after ``delay=SECONDS`` (default 1.0)
``truncate``   the normal status and headers, a Content-Length larger than the body, half the
               body, then the connection is closed
``expire``     the OAuth access token of the request expires (401 code 121 from then on);
               counts only Bearer requests; ``expire:after=N`` kills the token in use at the
               (N+1)-th Bearer call; fires once unless ``times=`` says otherwise

When a rule fires (all given conditions must hold; no condition = every matching request):

``p=FLOAT``      with this probability (drawn from a generator seeded by ``--seed``, one per rule)
``at=N+N+...``   on these 1-based matching requests
``every=N``      on every N-th matching request
``first=N``      on the first N matching requests
``after=N``      from the (N+1)-th matching request on
``times=N``      at most N times in all

Which requests match (default: every ``/api/v3.3`` request; the OAuth and control endpoints never
match): ``path=GLOB`` (``fnmatch`` on the path after ``/api/v3.3``, e.g. ``/lists/*/active.json``;
several joined by ``+``) and ``method=GET+POST``. The first rule that fires wins. Counts are per
rule and deterministic, so a test can say "the 3rd request gets a 500".
"""

from __future__ import annotations

import fnmatch
import random
from dataclasses import dataclass, field

from cmtoolkit.errors import ConfigurationError

KINDS = ("429", "429-bare", "500", "503", "drop", "slow", "truncate", "expire")


class FaultSpecError(ConfigurationError, ValueError):
    """An unparseable fault SPEC; the message names the bad part."""


@dataclass
class FaultRule:
    kind: str
    p: float | None = None
    at: frozenset[int] = frozenset()
    every: int | None = None
    first: int | None = None
    after: int | None = None
    times: int | None = None
    paths: tuple[str, ...] = ()
    methods: tuple[str, ...] = ()
    delay: float = 1.0
    reset: int = 30
    seen: int = 0
    fired: int = 0
    rng: random.Random = field(default_factory=random.Random, repr=False)

    def matches(self, method: str, path: str) -> bool:
        if self.methods and method.upper() not in self.methods:
            return False
        return not self.paths or any(fnmatch.fnmatchcase(path, g) for g in self.paths)

    def decide(self) -> bool:
        """Count one matching request; True when the fault fires on it."""
        self.seen += 1
        n = self.seen
        if self.times is not None and self.fired >= self.times:
            return False
        ok = True
        if self.at and n not in self.at:
            ok = False
        if self.every is not None and n % self.every:
            ok = False
        if self.first is not None and n > self.first:
            ok = False
        if self.after is not None and n <= self.after:
            ok = False
        if self.p is not None:
            draw = self.rng.random()  # always drawn: keeps the sequence independent of `ok`
            ok = ok and draw < self.p
        if ok:
            self.fired += 1
        return ok

    def describe(self) -> dict[str, object]:
        out: dict[str, object] = {"kind": self.kind, "seen": self.seen, "fired": self.fired}
        for name in ("p", "every", "first", "after", "times"):
            if getattr(self, name) is not None:
                out[name] = getattr(self, name)
        if self.at:
            out["at"] = sorted(self.at)
        if self.paths:
            out["path"] = list(self.paths)
        if self.methods:
            out["method"] = list(self.methods)
        if self.kind == "slow":
            out["delay"] = self.delay
        return out


def parse_faults(spec: str | None, seed: int = 0) -> list[FaultRule]:
    """Parse a SPEC (see the module docstring); an empty SPEC means no faults."""
    rules: list[FaultRule] = []
    for n, part in enumerate(p.strip() for p in (spec or "").split(";")):
        if not part:
            continue
        kind, _, opts = part.partition(":")
        kind = kind.strip().lower()
        if kind not in KINDS:
            raise FaultSpecError(f"unknown fault kind {kind!r} in {part!r}; kinds: {KINDS}")
        rule = FaultRule(kind=kind, rng=random.Random(f"{seed}:{n}:{kind}"))
        for opt in (o.strip() for o in opts.split(",")):
            if not opt:
                continue
            name, eq, value = opt.partition("=")
            name = name.strip().lower()
            if not eq:
                raise FaultSpecError(f"option {opt!r} in {part!r} needs NAME=VALUE")
            try:
                if name == "p":
                    rule.p = float(value)
                    if not 0 <= rule.p <= 1:
                        raise ValueError
                elif name == "at":
                    rule.at = frozenset(int(v) for v in value.split("+"))
                elif name in ("every", "first", "after", "times", "reset"):
                    setattr(rule, name, int(value))
                elif name == "delay":
                    rule.delay = float(value)
                elif name == "path":
                    rule.paths = tuple(v for v in value.split("+") if v)
                elif name == "method":
                    rule.methods = tuple(v.upper() for v in value.split("+") if v)
                else:
                    raise FaultSpecError(f"unknown option {name!r} in {part!r}")
            except ValueError as exc:
                if isinstance(exc, FaultSpecError):
                    raise
                raise FaultSpecError(f"bad value in {opt!r} (rule {part!r})") from None
        if rule.kind == "expire" and rule.times is None:
            rule.times = 1  # a refreshed token must not die again straight away
        rules.append(rule)
    return rules
