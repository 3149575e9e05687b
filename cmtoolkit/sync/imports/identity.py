"""How an import compares identifiers (DESIGN §5.1): the one home of the normalisation rules.

Emails are compared trimmed, Unicode-NFC-normalised, without zero-width characters and
case-folded; other fields trimmed and NFC-normalised. Both sides of a match (the contact's field
and the profiles' identifier property) go through the same macro, so ``jöhn@`` written NFD in
Campaign Monitor finds the profile holding it NFC.

The macros are SQL so matching stays set-based. Most values are plain ASCII (byte length equals
character length): they skip NFC and the regular expression, which keeps a million contacts
cheap. Case folding is DuckDB's ``lower`` (Unicode lowercase), which differs from a full
case fold only for a few letters (``ß`` stays ``ß``).
"""

from __future__ import annotations

from cmtoolkit.sync.statement import Statement

__all__ = ["IDENTITY_MACROS", "key_macro", "value_macro"]

#: Zero-width space, non-joiner, joiner, word joiner, byte-order mark.
ZERO_WIDTH = r"[\x{200B}-\x{200D}\x{2060}\x{FEFF}]"

IDENTITY_MACROS = Statement(
    f"""
    CREATE OR REPLACE TEMP MACRO email_clean(x) AS
        CASE WHEN strlen(x) = length(x) THEN trim(x)
             ELSE trim(regexp_replace(nfc_normalize(x), '{ZERO_WIDTH}', '', 'g')) END;
    CREATE OR REPLACE TEMP MACRO email_key(x) AS nullif(lower(email_clean(x)), '');
    CREATE OR REPLACE TEMP MACRO text_clean(x) AS
        CASE WHEN strlen(x) = length(x) THEN trim(x) ELSE nfc_normalize(trim(x)) END;
    CREATE OR REPLACE TEMP MACRO text_key(x) AS nullif(text_clean(x), '');
    """
)


def is_email(field: str) -> bool:
    """Whether a rule on ``field`` compares as an email (the subscriber's address)."""
    return field == "EmailAddress"


def key_macro(field: str) -> str:
    """The macro that turns a value of ``field`` into the key it is matched on."""
    return "email_key" if is_email(field) else "text_key"


def value_macro(field: str) -> str:
    """The macro that gives the value a created profile stores (normalised, case kept)."""
    return "email_clean" if is_email(field) else "text_clean"
