"""Checks of breach facts: what the CLI, flows and store refuse before anything is written,
and what an incident must hold before a notice may be produced.

Every check raises :class:`mpc.errors.InputError` (a bad value) with a one-line message that
says what to give instead; :func:`missing_for_notice` lists what a notice would lack
(GDPR Art. 33(3), 34(2); APPI Rules Art. 8, 10; :data:`NOTICE_RULES`) and
:class:`IncompleteBreachError` carries that
list when ``notify`` refuses.
"""

from __future__ import annotations

import re
from collections.abc import Iterable
from datetime import UTC, datetime, timedelta

from compliance.errors import ComplianceError
from mpc.errors import InputError

# Same names as tasks.regions.REGIONS (compliance must not import tasks; a test keeps them equal).
REGIONS: tuple[str, ...] = ("americas", "europe", "apac")
# Counts go to SQL INTEGER columns: 32-bit on PostgreSQL.  8 billion people fit.
MAX_COUNT = 2**31 - 1
MAX_ID = 128  # subjects.id is String(128)
MAX_CONTACT = 256  # breach_incidents.contact is String(256)
# Free text that goes into notices (nature, cause, prevention, complement, offer): paragraphs
# are legitimate (line breaks and tabs kept), other control characters are not; 4,000
# characters is a long page, more than any notice field needs.
MAX_TEXT = 4000
# Times of an incident: none before this many years ago (years like 0001 or 1900 are typos and
# overflow the UTC conversion near datetime.min).
MAX_YEARS_BACK = 20

_EMAIL = re.compile(r"[^@\s]+@[^@\s]+\.[^@\s]+")
_URL = re.compile(r"https?://\S+\.\S+")
_PHONE = re.compile(r"\+?\d[\d ()./-]{5,}\d")


# Where each regime lists what its notices must contain: a refusal cites the incident's own
# regimes, never GDPR for an APPI or California incident.  PDPA: Personal Data Protection
# (Notification of Data Breaches) Regulations 2021, reg. 5 (to the PDPC) and 6 (to
# individuals); APPI: Rules Art. 8(1) (report) and Art. 10 (the person); California: Civ.
# Code 1798.82(d); LGPD: Art. 48 §1.
NOTICE_RULES: dict[str, str] = {
    "gdpr": "GDPR Art. 33(3), 34(2)",
    "pdpa": "PDPA s. 26D; PDP (Notification of Data Breaches) Regulations 2021, reg. 5-6",
    "california": "Cal. Civ. Code 1798.82(d)",
    "appi": "APPI Rules Art. 8(1), 10",
    "lgpd": "LGPD Art. 48 §1",
}


def notice_rules(regimes: Iterable[str]) -> str:
    """The content rules of *regimes*, e.g. ``APPI Rules Art. 8(1), 10; Cal. Civ. Code ...``."""
    return "; ".join(NOTICE_RULES[r] for r in sorted(set(regimes)) if r in NOTICE_RULES)


class IncompleteBreachError(ComplianceError):
    """A notice would lack required contents; ``missing`` names them, ``basis`` the rule that
    asks for them (the incident's regimes)."""

    def __init__(self, breach_id: str, missing: list[str], *, basis: str) -> None:
        self.missing = missing
        super().__init__(
            f"breach {breach_id}: refusing to produce notices without {', '.join(missing)};"
            f" add them with `smt breach update` ({basis})"
        )


def one_line(value: str, what: str, *, max_len: int | None = None) -> str:
    """*value* stripped; refused when blank, multi-line (any control character) or too long."""
    text = value.strip()
    if not text:
        raise InputError(f"{what} is blank; give a non-empty value")
    if any(ord(ch) < 32 or ord(ch) == 127 for ch in text):
        raise InputError(f"{what} {text!r} holds a line break or control character; give one line")
    if max_len is not None and len(text) > max_len:
        raise InputError(f"{what} is {len(text)} characters long; at most {max_len}")
    return text


def identifier(value: str, what: str = "id") -> str:
    return one_line(value, what, max_len=MAX_ID)


def count(value: int | None, what: str) -> int | None:
    if value is None:
        return None
    if not 0 <= value <= MAX_COUNT:
        raise InputError(f"{what} must be between 0 and {MAX_COUNT:,}, got {value:,}")
    return value


def regions(values: Iterable[str]) -> list[str]:
    out = sorted({v.strip().lower() for v in values})
    unknown = [v for v in out if v not in REGIONS]
    if unknown:
        raise InputError(f"unknown region(s) {unknown}; use {', '.join(REGIONS)}")
    return out


def real_contact(value: str) -> bool:
    """True when *value* holds contact details someone can use: an e-mail address, a web
    address or a telephone number (not just a role such as "the DPO")."""
    return bool(_EMAIL.search(value) or _URL.search(value) or _PHONE.search(value))


def contact(value: str | None) -> str:
    """A contact point for notices (``""``: none yet, refused by ``notify``)."""
    if value is None or not value.strip():
        return ""
    text = one_line(value, "contact", max_len=MAX_CONTACT)
    if not real_contact(text):
        raise InputError(
            f"contact {text!r} holds no e-mail address, web address or telephone number;"
            " give real contact details (e.g. 'Data Protection Officer, dpo@example.org')"
        )
    return text


def text_block(value: str, what: str, *, max_len: int = MAX_TEXT) -> str:
    """Free text for a notice: stripped, paragraphs (``\n``, tabs) allowed, other control
    characters refused, at most *max_len* characters.  ``""`` stays ``""``."""
    text = value.replace("\r\n", "\n").strip()
    bad = [ch for ch in text if (ord(ch) < 32 and ch not in "\n\t") or 127 <= ord(ch) < 160]
    if bad:
        raise InputError(
            f"{what} holds a control character ({ord(bad[0]):#04x}); give plain text"
            " (line breaks between paragraphs are fine)"
        )
    if len(text) > max_len:
        raise InputError(f"{what} is {len(text):,} characters long; at most {max_len:,}")
    return text


def moment(value: datetime, what: str, *, now: datetime) -> datetime:
    """An aware time of the incident, not in the future nor more than MAX_YEARS_BACK years
    back; returned in UTC.  Raises ``InputError`` (never ``OverflowError``)."""
    if value.utcoffset() is None:
        raise InputError(f"{what} must carry a time zone, e.g. 2026-10-23T10:00:00+02:00")
    try:
        utc = value.astimezone(UTC)
    except OverflowError:
        raise InputError(f"{what} {value.isoformat()} is out of range; give a recent time") from None
    floor = now.astimezone(UTC) - timedelta(days=365 * MAX_YEARS_BACK)
    if utc < floor:
        raise InputError(
            f"{what} {value.isoformat()} is more than {MAX_YEARS_BACK} years ago;"
            " check the year (e.g. 2026-10-23T10:00:00+02:00)"
        )
    if utc > now:
        raise InputError(
            f"{what} {value.isoformat()} is in the future (now {now.isoformat()});"
            " give when it happened"
        )
    return utc


def times(
    *, aware_at: datetime, now: datetime, occurred_at: datetime | None = None
) -> None:
    """Awareness in the past, with an offset; the breach before we became aware of it."""
    for name, value in (("aware_at", aware_at), ("occurred_at", occurred_at)):
        if value is not None:
            moment(value, name, now=now)
    if aware_at > now:
        raise InputError(
            f"aware_at {aware_at.isoformat()} is in the future (now {now.isoformat()});"
            " give the time you became aware of the breach"
        )
    if occurred_at is not None and occurred_at > aware_at:
        raise InputError("occurred_at is after aware_at; a breach occurs before one learns of it")


def assessed_at(value: datetime, *, aware_at: datetime, now: datetime) -> datetime:
    moment(value, "assessed_at", now=now)
    if value < aware_at:
        raise InputError("assessed_at is before aware_at; an assessment follows awareness")
    return value


def missing_for_notice(
    *,
    nature: str,
    contact: str,
    categories: list[str],
    measures: list[str],
    affected_subjects: int,
    affected_records: int,
) -> list[str]:
    """What GDPR Art. 33(3) / 34(2) contents an incident lacks (empty: complete)."""
    out = []
    if not nature.strip():
        out.append("the nature of the breach (--nature)")
    if not categories:
        out.append("the categories of data (--category)")
    if affected_subjects <= 0:
        out.append("the approximate number of subjects (--affected)")
    if affected_records <= 0:
        out.append("the approximate number of records (--records)")
    if not measures:
        out.append("the measures taken or proposed (--measure)")
    if not contact.strip() or not real_contact(contact):
        out.append("a contact point with real contact details (--contact or SMT_BREACH_CONTACT)")
    return out
