"""Deterministic synthetic people, shared by the profile generator and the emulator's seeding.

Person ``i`` under seed ``s`` always has the same name and email, whichever range is generated and
in whatever order, so a profile store and a Campaign Monitor account generated separately agree on
who is who: a profile store made of persons ``[0, P)`` and an account made of persons
``[P - overlap, P - overlap + S)`` share exactly ``overlap`` people. Generation is vectorised
(numpy), so ten million people take seconds, not minutes.
"""

from __future__ import annotations

import numpy as np
import polars as pl

FIRST_NAMES = (
    "Emma Liam Olivia Noah Ava Elijah Sophia Lucas Mia Mateo Amelia Levi Harper Ezra Evelyn James "
    "Luna Oliver Aria Leo Chloé Jörg Zoë Søren Élodie Nuño Mikaela Hiroshi Ana Wei Priya Ahmed "
    "Fatima Kofi Ingrid Björn Siobhán Tomás Renée Dmitri Ayşe Giulia Chiara Jakub Zofia Thandiwe "
    "Kai Nora Ravi Anaïs"
).split()
# Underscores join multi-word surnames ("Van der Berg") so one split() reads the list.
LAST_NAMES = tuple(
    n.replace("_", " ")
    for n in (
        "Smith Johnson Williams Brown Jones Garcia Miller Davis Rodriguez Martinez Hernandez "
        "Lopez Gonzalez Wilson Anderson Thomas Taylor Moore Jackson Martin Lee Perez Thompson "
        "White Harris Müller Schröder Øvergaard Nuñez Dubois Lefèvre Rossi Bianchi Kowalski "
        "Novák Yamamoto Tanaka Chen Wang Singh Patel Okafor Mensah Johansson Nieminen O'Brien "
        "García-Márquez Van_der_Berg De_Vries Ivanov"
    ).split()
)
DOMAINS = (
    "example.com example.org example.net mail.example.com inbox.example.org post.example.net "
    "corp.example.com shop.example.org"
).split()

_M1 = np.uint64(0xBF58476D1CE4E5B9)
_M2 = np.uint64(0x94D049BB133111EB)
_GOLDEN = np.uint64(0x9E3779B97F4A7C15)


def mix(seed: int, index: np.ndarray, stream: int) -> np.ndarray:
    """SplitMix64 of (seed, index, stream): independent uniform uint64 per person and purpose."""
    with np.errstate(over="ignore"):
        x = index.astype(np.uint64) * _GOLDEN
        x ^= np.uint64((seed * 0x632BE59BD9B4E019 + stream * 0x85EBCA77C2B2AE63) & (2**64 - 1))
        x ^= x >> np.uint64(30)
        x *= _M1
        x ^= x >> np.uint64(27)
        x *= _M2
        x ^= x >> np.uint64(31)
    return x


def uniform(seed: int, index: np.ndarray, stream: int) -> np.ndarray:
    """Floats in [0, 1) for each person, deterministic per (seed, person, stream)."""
    return (mix(seed, index, stream) >> np.uint64(11)).astype(np.float64) / float(1 << 53)


def pick(
    seed: int,
    index: np.ndarray,
    stream: int,
    choices: tuple[str, ...] | list[str],
) -> pl.Series:
    codes = (mix(seed, index, stream) % np.uint64(len(choices))).astype(np.int64)
    return pl.Series(list(choices), dtype=pl.Utf8).gather(codes)


def people(seed: int, start: int, stop: int) -> pl.DataFrame:
    """Persons ``[start, stop)``: ``person`` (int), ``first_name``, ``last_name``, ``email``.

    Emails are unique per person (the person number is part of the local part) and lower case.
    """
    index = np.arange(start, stop, dtype=np.int64)
    first = pick(seed, index, 1, FIRST_NAMES)
    last = pick(seed, index, 2, LAST_NAMES)
    domain = pick(seed, index, 3, DOMAINS)
    frame = pl.DataFrame(
        {"person": index, "first_name": first, "last_name": last, "domain": domain}
    )
    local = (
        pl.concat_str(
            [
                pl.col("first_name").str.to_lowercase(),
                pl.lit("."),
                pl.col("last_name").str.to_lowercase(),
                pl.col("person").cast(pl.Utf8),
            ]
        )
        # Keep emails plain ASCII: drop what is not a letter, digit or dot.
        .str.replace_all(r"[^a-z0-9.]", "")
    )
    return frame.with_columns(email=pl.concat_str([local, pl.lit("@"), pl.col("domain")])).drop(
        "domain"
    )
