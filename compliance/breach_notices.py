"""Breach notices: the notification to the supervisory authority and the notices to subjects.

Plain functions from a :class:`NoticeContent` (facts only, no names or contact data of
subjects) to text in one locale, with dates, times and numbers formatted by Babel for that
locale and the reader's time zone.  Every sentence goes through the gettext catalogs in
``locales/``; category, measure and risk codes map to translated labels below.

The authority notification carries the contents of GDPR Art. 33(3): (a) the nature of the
breach, categories and approximate numbers of subjects and records; (b) a contact point;
(c) the likely consequences; (d) the measures taken or proposed; plus reasons when it is late
(Art. 33(1)) and the phase number when information is provided in phases (Art. 33(4)).
"""

from __future__ import annotations

from dataclasses import dataclass, field
from datetime import datetime

from compliance.breach_deadlines import RiskLevel
from compliance.i18n import N_, Translator, translator
from mpc.errors import InputError

CATEGORIES: dict[str, str] = {
    "contact": N_("contact details"),
    "identity": N_("identity data"),
    "financial": N_("financial data"),
    "health": N_("health data"),
    "credentials": N_("login credentials"),
    "location": N_("location data"),
}

# Measures are whole sentences, shown one per line: joining clauses into one noun list reads
# wrongly in Japanese and Chinese (「遮断しました、…」, 「已阻止…和已重置…」).
MEASURES: dict[str, str] = {
    "access_revoked": N_("The unauthorised access was blocked."),
    "credentials_reset": N_("The affected passwords were reset."),
    "systems_patched": N_("The affected systems were patched."),
    "police_informed": N_("Law enforcement was informed."),
}
BULLET = "- "

# Cal. Civ. Code 1798.82(d)(2)(F): toll-free numbers and addresses of the major credit reporting
# agencies, when identity numbers (SSN, driver's licence, ID card: category ``identity``) were
# exposed.  Proper names and addresses, not translated.  As the agencies publish them for
# consumers (checked 2026); re-check before each use, they change.
CREDIT_AGENCIES: tuple[str, ...] = (
    "Equifax, P.O. Box 740241, Atlanta, GA 30374-0241, 1-800-685-1111, www.equifax.com",
    "Experian, P.O. Box 9554, Allen, TX 75013, 1-888-397-3742, www.experian.com",
    "TransUnion, P.O. Box 2000, Chester, PA 19016, 1-888-909-8872, www.transunion.com",
)
# 1798.82(d)(2)(G): the offer runs "not less than 12 months", at no cost.
IDENTITY_SERVICE_MONTHS = 12

# The legal bases notices cite, written each language's way through the catalogs (pt_BR "art.
# 48 da LGPD", ja "LGPD第48条"); the codes stay as they are in the JSON and audit entries.
CITATIONS: dict[str, str] = {
    "GDPR Art. 33": N_("GDPR Art. 33"),
    "PDPA s. 26D": N_("PDPA s. 26D"),
    "Cal. Civ. Code 1798.82": N_("Cal. Civ. Code 1798.82"),
    "APPI Art. 26": N_("APPI Art. 26"),
    "APPI Rules Art. 8(2)": N_("APPI Rules Art. 8(2)"),
    "LGPD Art. 48": N_("LGPD Art. 48"),
    "ANPD Res. 15/2024": N_("ANPD Res. 15/2024"),
}


def cite(t: Translator, basis: str) -> str:
    """*basis* as the reader's language cites it (unknown bases unchanged)."""
    return t.gettext(CITATIONS[basis]) if basis in CITATIONS else basis


RISK_LABELS: dict[RiskLevel, str] = {
    RiskLevel.LOW: N_("low"),
    RiskLevel.MEDIUM: N_("medium"),
    RiskLevel.HIGH: N_("high"),
}

CONSEQUENCES: dict[RiskLevel, str] = {
    RiskLevel.LOW: N_("The breach is unlikely to harm the persons concerned."),
    RiskLevel.MEDIUM: N_("The persons concerned may receive unwanted messages or fraud attempts."),
    RiskLevel.HIGH: N_(
        "The persons concerned may suffer identity theft, financial loss or other serious harm."
    ),
}


@dataclass(frozen=True, kw_only=True)
class NoticeContent:
    """What a notice says about one incident (no subject names or contact data)."""

    reference: str
    nature: str
    aware_at: datetime
    affected_subjects: int
    affected_records: int
    categories: tuple[str, ...]
    measures: tuple[str, ...]
    risk: RiskLevel
    contact: str
    occurred_at: datetime | None = None
    encrypted: bool = False
    basis: str = "GDPR Art. 33"
    phase: int = 1
    late_reasons: str | None = None
    due_at: datetime | None = None
    cause: str | None = None  # APPI Rules Art. 8(1)(iv)
    prevention: str | None = None  # APPI Rules Art. 8(1)(viii): measures against recurrence
    final: bool = False  # APPI Rules Art. 8(2): the final report
    regime: str = "gdpr"  # whose rules the phase line cites
    complement: str | None = None  # complementary information given with an update
    # Cal. Civ. Code 1798.82(d)(2)
    business: str | None = None  # (A) name of the business (contact: ``contact``)
    occurred_until: datetime | None = None  # (C) end of the date range
    occurred_estimated: bool = False  # (C) the date is an estimate
    law_enforcement_delay: bool | None = None  # (D)
    third_party_source: bool = False  # (G) not owed when we were not the source
    identity_services: str | None = None  # (G) the offer and how to take it up
    secondary_damage: str | None = None  # APPI Rules Art. 8(1)(v): secondary damage or risk
    # APPI Rules Art. 10: the notice to the person (本人) carries Art. 8(1) items i, ii, iv, v
    # and ix: overview, data items, cause, secondary damage, other matters for reference
    appi_subject: bool = False

    def __post_init__(self) -> None:
        unknown = [c for c in self.categories if c not in CATEGORIES]
        unknown += [m for m in self.measures if m not in MEASURES]
        if unknown:
            raise InputError(
                f"unknown category or measure code(s) {unknown}; categories: "
                f"{sorted(CATEGORIES)}; measures: {sorted(MEASURES)}"
            )


@dataclass(frozen=True, kw_only=True)
class RenderedNotice:
    audience: str  # "authority" or "subject"
    locale: str
    tz: str
    title: str
    body: str
    lines: tuple[str, ...] = field(default=())


def _labels(t: Translator, codes: tuple[str, ...], table: dict[str, str]) -> str:
    """Nouns as one list, joined the locale's way (``a, b and c``, ``a、b``, ``a和b``)."""
    return t.join([t.gettext(table[c]) for c in codes])


def _sentences(t: Translator, codes: tuple[str, ...], table: dict[str, str]) -> list[str]:
    """Whole sentences, one bullet line each (never joined into a noun list)."""
    return [BULLET + t.gettext(table[c]) for c in codes]


def render_authority_notice(c: NoticeContent, *, locale: str, tz: str) -> RenderedNotice:
    t = translator(locale, tz)
    _ = t.gettext
    heading = (
        _("Final report under %(basis)s")
        if c.final
        else _("Notification to the supervisory authority under %(basis)s")
    )
    lines = [
        heading % {"basis": cite(t, c.basis)},
        _("Reference: %(reference)s") % {"reference": c.reference},
    ]
    lines.extend(_phase_lines(t, c))
    lines.append(_("Nature of the breach: %(nature)s") % {"nature": c.nature})
    if c.occurred_at is not None:
        lines.append(_("The breach occurred on %(date)s.") % {"date": t.date(c.occurred_at)})
    lines.append(
        _("We became aware of the breach on %(date)s at %(time)s (%(zone)s).")
        % {"date": t.date(c.aware_at), "time": t.time(c.aware_at), "zone": t.tz_name(c.aware_at)}
    )
    lines.append(
        t.ngettext(
            "Approximately %(num)s data subject is concerned.",
            "Approximately %(num)s data subjects are concerned.",
            c.affected_subjects,
        )
        % {"num": t.number(c.affected_subjects)}
    )
    lines.append(
        t.ngettext(
            "Approximately %(num)s personal data record is concerned.",
            "Approximately %(num)s personal data records are concerned.",
            c.affected_records,
        )
        % {"num": t.number(c.affected_records)}
    )
    lines.append(
        _("Categories of personal data concerned: %(categories)s.")
        % {"categories": _labels(t, c.categories, CATEGORIES)}
    )
    lines.append(_("Risk level assessed: %(level)s.") % {"level": _(RISK_LABELS[c.risk])})
    lines.append(
        _("Likely consequences: %(consequences)s") % {"consequences": _(CONSEQUENCES[c.risk])}
    )
    lines.append(_("Measures taken or proposed:"))
    lines.extend(_sentences(t, c.measures, MEASURES))
    if c.cause:
        lines.append(_("Cause of the breach: %(cause)s") % {"cause": c.cause})
    if c.secondary_damage:
        lines.append(
            _("Secondary damage or risk of it: %(damage)s") % {"damage": c.secondary_damage}
        )
    if c.prevention:
        lines.append(
            _("Measures to prevent recurrence: %(prevention)s") % {"prevention": c.prevention}
        )
    if c.encrypted:
        lines.append(_("The affected data was encrypted."))
    if c.complement:
        lines.append(_("Complementary information: %(complement)s") % {"complement": c.complement})
    lines.append(_("Contact point for more information: %(contact)s") % {"contact": c.contact})
    if c.late_reasons:
        due = t.datetime(c.due_at) if c.due_at is not None else "-"
        lines.append(
            _(
                "This notification is made after the deadline of %(due)s. Reasons for the delay: %(reasons)s"
            )
            % {"due": due, "reasons": c.late_reasons}
        )
    title = _("Personal data breach notification")
    return RenderedNotice(
        audience="authority",
        locale=t.locale,
        tz=tz,
        title=title,
        body="\n".join([title, "", *lines]) + "\n",
        lines=tuple(lines),
    )


def _phase_lines(t: Translator, c: NoticeContent) -> list[str]:
    """What a later notice is, citing its own regime's rule: GDPR Art. 33(4) phases; the
    LGPD complementary information (ANPD Res. 15/2024); the APPI final report (Rules Art.
    8(2)) completes the preliminary one; other regimes set no rule on updates (none cited)."""
    _ = t.gettext
    phase = {"phase": t.number(c.phase)}
    if c.final:
        return [_("This final report completes our preliminary report.")]
    if c.phase <= 1:
        return []
    if c.regime == "gdpr":
        return [
            _("This is update %(phase)s of a notification provided in phases (Article 33(4)).")
            % phase
        ]
    if c.regime == "lgpd":
        return [
            _(
                "This notice gives complementary information (update %(phase)s) to the"
                " initial communication, under %(basis)s."
            )
            % {**phase, "basis": cite(t, "ANPD Res. 15/2024")}
        ]
    return [_("This is update %(phase)s of this notification.") % phase]


def _appi_subject_lines(t: Translator, c: NoticeContent) -> list[str]:
    """APPI Rules Art. 10 -> Art. 8(1)(iv), (v): the cause (said to be still under
    investigation while unknown at the preliminary stage) and any secondary damage."""
    if not c.appi_subject:
        return []
    _ = t.gettext
    lines = [
        _("Cause of the breach: %(cause)s") % {"cause": c.cause}
        if c.cause
        else _("The cause of the breach is still being investigated; we will tell you once it is known.")
    ]
    if c.secondary_damage:
        lines.append(
            _("Secondary damage or risk of it: %(damage)s") % {"damage": c.secondary_damage}
        )
    return lines


def render_subject_notice(
    c: NoticeContent, *, locale: str, tz: str, issued_at: datetime
) -> RenderedNotice:
    t = translator(locale, tz)
    _ = t.gettext
    lines = [
        _("Hello,"),
        _(
            "On %(date)s at %(time)s we became aware of a security incident that concerns your personal data."
        )
        % {"date": t.date(c.aware_at), "time": t.time(c.aware_at)},
        _("What happened: %(nature)s") % {"nature": c.nature},  # GDPR Art. 34(2)
        *_appi_subject_lines(t, c),
        t.ngettext(
            "In total, about %(num)s person is affected.",
            "In total, about %(num)s people are affected.",
            c.affected_subjects,
        )
        % {"num": t.number(c.affected_subjects)},
        _("Data concerned: %(categories)s.") % {"categories": _labels(t, c.categories, CATEGORIES)},
        _(CONSEQUENCES[c.risk]),
        _("What we have done:"),
        *_sentences(t, c.measures, MEASURES),
        _(
            "What you can do: change your passwords and be careful with unexpected messages "
            "that ask for personal information."
        ),
        _("If you have questions, contact %(contact)s.") % {"contact": c.contact},
        _("Notice issued on %(date)s.") % {"date": t.datetime(issued_at)},
    ]
    title = _("Important information about your personal data")
    return RenderedNotice(
        audience="subject",
        locale=t.locale,
        tz=tz,
        title=title,
        body="\n".join([title, "", *lines]) + "\n",
        lines=tuple(lines),
    )


def render_california_notice(
    c: NoticeContent, *, locale: str, tz: str, issued_at: datetime
) -> RenderedNotice:
    """The resident notice of Cal. Civ. Code 1798.82(d): titled "Notice of Data Breach", the
    contents under the headings "What Happened", "What Information Was Involved", "What We Are
    Doing", "What You Can Do" and "For More Information", in plain language.  The statute also
    asks for at least 10-point type: that binds whoever prints or lays out these texts (they
    are plain text and carry no type size).  Other locales translate the headings (the English
    ones are exactly the statute's).  Sure: high on title and headings (statute text).
    Contents of (d)(2): (A) the business (``business``) and its contact details; (B) the
    types of information; (C) the date, estimated date or date range; (D) whether a law
    enforcement investigation delayed the notice (stated either way); (E) what happened;
    (F) the credit reporting agencies when identity numbers were exposed; (G) then also the
    offer of identity theft services for 12 months at no cost, unless the breach was at a
    third party.  The Attorney General gets a sample copy of this notice (1798.82(f))."""
    t = translator(locale, tz)
    _ = t.gettext
    happened = [c.nature]
    # (C): the date, the estimated date or the date range, where it can be determined
    if c.occurred_at is not None and c.occurred_until is not None:
        happened.append(
            _("The breach occurred between %(start)s and %(end)s.")
            % {"start": t.date(c.occurred_at), "end": t.date(c.occurred_until)}
        )
    elif c.occurred_at is not None and c.occurred_estimated:
        happened.append(
            _("The estimated date of the breach is %(date)s.") % {"date": t.date(c.occurred_at)}
        )
    elif c.occurred_at is not None:
        happened.append(_("The breach occurred on %(date)s.") % {"date": t.date(c.occurred_at)})
    else:
        happened.append(_("The date of the breach is not yet known."))
    happened.append(_("We discovered the breach on %(date)s.") % {"date": t.date(c.aware_at)})
    # the likely consequences: not among (d)(2)'s items, but owed to the same readers when this
    # notice also stands in for GDPR Art. 34(2), PDPA or LGPD Art. 48 §1 III (a subject whose
    # country is unknown); extra plain-language content is allowed, so it is always stated
    happened.append(_(CONSEQUENCES[c.risk]))
    happened.extend(_appi_subject_lines(t, c))  # a fallback notice standing in for APPI's
    # (D): stated either way (police not informed: no investigation could delay it)
    happened.append(
        _("This notification was delayed as a result of a law enforcement investigation.")
        if c.law_enforcement_delay
        else _("This notification was not delayed as a result of a law enforcement investigation.")
    )
    can_do = [
        _(
            "Change your passwords and be careful with unexpected messages that ask "
            "for personal information."
        )
    ]
    if "identity" in c.categories:
        if not c.third_party_source and c.identity_services:  # (G)
            can_do.append(
                _(
                    "We offer you identity theft prevention and mitigation services for"
                    " %(months)s months at no cost to you. To take up the offer: %(offer)s"
                )
                % {"months": t.number(IDENTITY_SERVICE_MONTHS), "offer": c.identity_services}
            )
        can_do.append(  # (F)
            _("You can contact the major credit reporting agencies:")
        )
        can_do.extend(BULLET + line for line in CREDIT_AGENCIES)
    sections = [
        (_("What Happened"), happened),
        (
            _("What Information Was Involved"),
            [
                _("Types of personal information involved: %(categories)s.")
                % {"categories": _labels(t, c.categories, CATEGORIES)}
            ],
        ),
        (_("What We Are Doing"), _sentences(t, c.measures, MEASURES)),
        (_("What You Can Do"), can_do),
        (
            _("For More Information"),
            [
                *(
                    [_("This notice is sent by %(business)s.") % {"business": c.business}]
                    if c.business
                    else []
                ),  # (A): the business, and its contact details below
                _("If you have questions, contact %(contact)s.") % {"contact": c.contact},
                _("Notice issued on %(date)s.") % {"date": t.datetime(issued_at)},
            ],
        ),
    ]
    lines: list[str] = []
    for heading, body in sections:
        lines += [heading, *body, ""]
    title = _("Notice of Data Breach")
    return RenderedNotice(
        audience="subject",
        locale=t.locale,
        tz=tz,
        title=title,
        body="\n".join([title, "", *lines]).rstrip("\n") + "\n",
        lines=tuple(lines),
    )


def cli_summary(
    *,
    reference: str,
    open_deadlines: int,
    next_due: datetime | None,
    locale: str = "en",
    tz: str = "UTC",
) -> str:
    """One or two translated lines the CLI prints after a breach command (not with --json)."""
    t = translator(locale, tz)
    out = t.ngettext(
        "Breach %(id)s: %(num)s open deadline.",
        "Breach %(id)s: %(num)s open deadlines.",
        open_deadlines,
    ) % {"id": reference, "num": t.number(open_deadlines)}
    if next_due is not None:
        out += "\n" + t.gettext("Next deadline: %(due)s.") % {"due": t.datetime(next_due)}
    return out
