"""The information an access export owes the subject besides the data (GDPR Art. 15(1)(a)-(h),
15(2)), in the subject's language.

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
from compliance.i18n import DEFAULT_LOCALE, N_, translator
from compliance.models import DataSubjectRequest, InferenceRun, Subject
from compliance.runs import INPUTS, QUARANTINE, REGION_REGIME, RESULTS
from mpc.errors import InputError

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
RIGHTS = (
    N_("You may ask us to rectify inaccurate data (Article 16)."),
    N_("You may ask us to erase your data (Article 17)."),
    N_("You may ask us to restrict its processing (Article 18)."),
    N_("You may object to its processing (Article 21)."),
    N_("You may lodge a complaint with a supervisory authority (Article 77)."),
)
RETENTION_LINES = {
    INPUTS: N_("Copies of the submitted texts: %(days)s days from the run."),
    RESULTS: N_("Results: %(days)s days from the run."),
    QUARANTINE: N_("Rejected records: %(days)s days from the run."),
    retention.EXPORTS: N_("Copies of exports like this one: %(days)s days after the request closes."),
}
WORK_FILES = N_("Working copies made during a run are deleted when the run ends.")
NO_TRANSFER = N_("Your data was processed only in the region of its residency.")
TRANSFER = N_(
    "Run %(run)s processed your data in region %(region)s, outside its residency region"
    " %(home)s; the transfer is protected by the EU Standard Contractual Clauses"
    " (Article 46(2)(c))."
)


def information(
    session: Session, request: DataSubjectRequest, subject: Subject, runs: list[InferenceRun]
) -> dict[str, Any]:
    """Art. 15(1)(a)-(h) and 15(2), translated; ``runs``: the runs that hold the subject's data."""
    locale, fallback = subject.locale or DEFAULT_LOCALE, subject.locale is None
    try:
        t = translator(locale, subject.time_zone or "UTC")
    except InputError:
        t, fallback = translator(DEFAULT_LOCALE, subject.time_zone or "UTC"), True
    _ = t.gettext
    # retention follows the region the data is processed in (as ``compliance.retention`` does)
    home = REGION_REGIME.get(subject.region or "")
    regime = home.value if home is not None else request.regime
    transfers = [
        _(TRANSFER) % {"run": run.run_id, "region": run.region, "home": subject.region}
        for run in runs
        if subject.region and run.region not in (subject.region, "any")
    ]
    return {
        "locale": t.locale,
        "fallback_locale": fallback,
        "basis": "GDPR Art. 15(1)(a)-(h), 15(2)",
        "purposes": [_(p) for p in PURPOSES],
        "categories": [_(c) for c in CATEGORIES],
        "recipients": [_(r) for r in RECIPIENTS],
        "retention": [
            _(text) % {"days": t.number(retention.policy_days(session, cat, regime))}
            for cat, text in RETENTION_LINES.items()
        ]
        + [_(WORK_FILES)],
        "rights": [_(r) for r in RIGHTS],
        "source": _(SOURCE),
        "automated_decisions": _(AUTOMATED),
        "transfers": transfers or [_(NO_TRANSFER)],
    }


def as_text(info: dict[str, Any]) -> str:
    """The same information as a plain-text document (``information.txt`` in the export)."""
    t = translator(info["locale"])
    _ = t.gettext
    sections = [
        (_("Purposes of the processing"), info["purposes"]),
        (_("Categories of personal data"), info["categories"]),
        (_("Recipients"), info["recipients"]),
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
