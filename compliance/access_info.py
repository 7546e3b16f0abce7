"""The information an access export owes the subject besides the data, in the subject's
language, under the law the request was made under: GDPR Art. 15(1)(a)-(h) and 15(2); for a CCPA
request to know Civ. Code 1798.110/1798.115 and 11 CCR 7024 (categories, sources, purposes,
recipients, no sale or sharing, the consumer's rights); for a PDPA access request s. 21.

The texts describe this platform's processing (its record of processing activities, Art. 30):
one purpose (secure inference), the categories it holds, who receives what (the model owner and
the dealer receive secret shares only, which reveal nothing on their own), the retention periods
in force (read from the store's policies, so they are the ones retention applies), the source,
the rights, automated decision-making and the transfers actually made (runs processed in a
region other than the subject's residency).  Every sentence is in the gettext catalogs; a
subject without a stored locale gets English, and the export says so (``fallback_locale``).
"""

from __future__ import annotations

from typing import Any

from sqlalchemy.orm import Session

from compliance import retention
from compliance.i18n import N_, translator, translator_or_fallback
from compliance.models import DataSubjectRequest, InferenceRun, Regime, Subject
from compliance.runs import INPUTS, QUARANTINE, REGION_REGIME, RESULTS

PURPOSES = (
    N_(
        "Secure inference: computing embeddings or scores of the texts submitted about you with a"
        " language model, under secure multi-party computation, so that the model's owner never"
        " sees your texts."
    ),
)
CATEGORIES = (
    N_("a pseudonymous identifier (no name or contact details)"),
    N_("the texts submitted for processing"),
    N_("the region where your data must be processed"),
    N_("the results computed from your texts (embeddings or scores)"),
    N_("your consents, objections and requests, and their history"),
)
RECIPIENTS = (
    N_(
        "The model owner's and the dealer's services receive only secret shares of your texts,"
        " which reveal nothing on their own; only the organisation that submitted your texts"
        " receives the results."
    ),
)
SOURCE = N_(
    "Your texts were submitted by the organisation that collected them from you (the data owner);"
    " the platform collects nothing from other sources."
)
AUTOMATED = N_(
    "No decision with legal or similarly significant effects is taken about you solely by"
    " automated means on this platform (Article 22)."
)
RIGHTS = {
    Regime.GDPR: (
        N_("You may ask us to rectify inaccurate data (Article 16)."),
        N_("You may ask us to erase your data (Article 17)."),
        N_("You may ask us to restrict its processing (Article 18)."),
        N_("You may object to its processing (Article 21)."),
        N_("You may lodge a complaint with a supervisory authority (Article 77)."),
    ),
    # Cal. Civ. Code 1798.100-1798.125 and 11 CCR 7024: a response to a request to know
    Regime.CCPA: (
        N_("You may ask us to delete your personal information (Civil Code 1798.105)."),
        N_("You may ask us to correct inaccurate personal information (Civil Code 1798.106)."),
        N_(
            "You may opt out of the sale or sharing of your personal information"
            " (Civil Code 1798.120)."
        ),
        N_("You may limit the use of your sensitive personal information (Civil Code 1798.121)."),
        N_("We will not discriminate against you for exercising these rights (Civil Code 1798.125)."),
    ),
    # Singapore PDPA: access s. 21, correction s. 22, withdrawal of consent s. 16
    Regime.PDPA: (
        N_("You may ask us to correct your personal data (section 22)."),
        N_("You may withdraw your consent at any time (section 16)."),
        N_("You may complain to the Personal Data Protection Commission."),
    ),
}
BASIS = {
    Regime.GDPR: "GDPR Art. 15(1)(a)-(h), 15(2)",
    Regime.CCPA: "Cal. Civ. Code 1798.100, 1798.110, 1798.115; 11 CCR 7024",
    Regime.PDPA: "PDPA s. 21(1)",
}
NO_SALE = N_("We do not sell or share your personal information.")
RETENTION_LINES = {
    INPUTS: N_("Copies of the submitted texts: %(days)s days from the run."),
    RESULTS: N_("Results: %(days)s days from the run."),
    QUARANTINE: N_("Rejected records: %(days)s days from the run."),
    retention.EXPORTS: N_("Copies of exports like this one: %(days)s days after the request closes."),
}
WORK_FILES = N_("Working copies made during a run are deleted when the run ends.")
NO_TRANSFER = N_("Your data was processed only in the region of its residency.")
TRANSFER = {
    Regime.GDPR: N_(
        "Run %(run)s processed your data in region %(region)s, outside its residency region"
        " %(home)s; the transfer is protected by the EU Standard Contractual Clauses"
        " (Article 46(2)(c))."
    ),
    Regime.PDPA: N_(
        "Run %(run)s processed your data in region %(region)s, outside its residency region"
        " %(home)s; the recipient is bound to a standard of protection comparable to the PDPA"
        " (section 26)."
    ),
    Regime.CCPA: N_(
        "Run %(run)s processed your data in region %(region)s, outside its residency region"
        " %(home)s."
    ),
}


def information(
    session: Session, request: DataSubjectRequest, subject: Subject, runs: list[InferenceRun]
) -> dict[str, Any]:
    """Art. 15(1)(a)-(h) and 15(2), translated; ``runs``: the runs that hold the subject's data."""
    t, fallback = translator_or_fallback(subject.locale, subject.time_zone)
    _ = t.gettext
    # retention follows the region the data is processed in (as ``compliance.retention`` does)
    home = REGION_REGIME.get(subject.region or "")
    regime = home.value if home is not None else request.regime
    law = Regime(request.regime)  # the law the request was made under decides the contents
    transfers = [
        _(TRANSFER[law]) % {"run": run.run_id, "region": run.region, "home": subject.region}
        for run in runs
        if subject.region and run.region not in (subject.region, "any")
    ]
    extra = {"sale_or_sharing": _(NO_SALE)} if law is Regime.CCPA else {}
    return {
        "locale": t.locale,
        "fallback_locale": fallback,
        "basis": BASIS[law],
        **extra,
        "purposes": [_(p) for p in PURPOSES],
        "categories": [_(c) for c in CATEGORIES],
        "recipients": [_(r) for r in RECIPIENTS],
        "retention": [
            _(text) % {"days": t.number(retention.policy_days(session, cat, regime))}
            for cat, text in RETENTION_LINES.items()
        ]
        + [_(WORK_FILES)],
        "rights": [_(r) for r in RIGHTS[law]],
        "source": _(SOURCE),
        "automated_decisions": _(AUTOMATED),
        "transfers": transfers or [_(NO_TRANSFER)],
    }


def as_text(info: dict[str, Any]) -> str:
    """The same information as a plain-text document (``information.txt`` in the export)."""
    t = translator(info["locale"])
    _ = t.gettext
    sale = [info["sale_or_sharing"]] if "sale_or_sharing" in info else []
    sections = [
        (_("Purposes of the processing"), info["purposes"]),
        (_("Categories of personal data"), info["categories"]),
        (_("Recipients"), info["recipients"] + sale),
        (_("How long we keep your data"), info["retention"]),
        (_("Your rights"), info["rights"]),
        (_("Source of the data"), [info["source"]]),
        (_("Automated decision-making"), [info["automated_decisions"]]),
        (_("Transfers to other regions"), info["transfers"]),
    ]
    lines = [_("Information about the processing of your personal data"), ""]
    for title, items in sections:
        lines += [title, *[f"- {item}" for item in items], ""]
    return "\n".join(lines)
