"""Rights that must hold across requests: suppression after erasure (Art. 7(3), 17(3), 21(3),
CCPA 1798.120), interim restriction and its lifting (Art. 18(1)(a),(d), 18(3)), CCPA receipt
confirmations (regs 7021(a)), the controller's time zone and the subject's holidays (GDPR), the
Art. 15 information and the provided data in an access export, export zips 0600."""

from __future__ import annotations

import json
import os
import stat
import zipfile
from datetime import UTC, datetime, timedelta
from pathlib import Path
from zoneinfo import ZoneInfo

import pandas as pd
import pytest
from compliance_helpers import write_run
from sqlalchemy import select

from compliance import requests, restriction, service, suppression
from compliance.db import transaction
from compliance.gate import ExclusionReason
from compliance.models import AuditEntry, DataSubjectRequest, Subject, Suppression
from compliance.runs import record_inference_run
from compliance.subjects import decide, ensure_subject, record_consent, reinstate, set_flags

P = "secure_inference"
NOW = datetime.now(UTC)
PARIS = ZoneInfo("Europe/Paris")


def _submit(factory, subject: str, rtype: str, regime: str = "gdpr", **kw) -> str:
    with transaction(factory) as s:
        return requests.submit(s, subject_id=subject, rtype=rtype, regime=regime, **kw).id


def _run(factory, tmp_path: Path, request_id: str) -> dict:
    result = service.execute(factory, request_id, export_dir=str(tmp_path / "exports"),
                             worker="w1")
    assert result is not None
    return result


def _gate(factory, *ids: str) -> dict:
    with factory() as s:
        return {k: v.reason for k, v in decide(s, ids, purpose=P).items()}


def _actions(factory) -> list[str]:
    with factory() as s:
        return [e.action for e in s.execute(select(AuditEntry).order_by(AuditEntry.seq)).scalars()]


# --- suppression after erasure ----------------------------------------------------------------


@pytest.mark.parametrize(
    "setup,reason,kept",
    [
        ("withdraw", ExclusionReason.CONSENT_WITHDRAWN, ("consent_withdrawn", P)),
        ("objected", ExclusionReason.OBJECTED, ("objected", "*")),
        ("opted_out", ExclusionReason.OBJECTED, ("opted_out", "*")),
    ],
)
def test_withdrawal_objection_and_opt_out_outlive_an_erasure(factory, tmp_path, setup, reason,
                                                             kept):
    with transaction(factory) as s:
        record_consent(s, "alice", P, given=True, source="web")
        record_consent(s, "bob", P, given=True, source="web")
        if setup == "withdraw":
            record_consent(s, "alice", P, given=False, source="web")
        else:
            set_flags(s, s.get(Subject, "alice"), actor="t", now=NOW, reason="test",
                      **{setup: True})
    assert _gate(factory, "alice", "bob") == {"alice": reason, "bob": None}
    regime, rtype = ("ccpa", "delete") if setup == "opted_out" else ("gdpr", "erasure")
    assert _run(factory, tmp_path, _submit(factory, "alice", rtype, regime))["status"] == "completed"
    with factory() as s:
        assert s.get(Subject, "alice") is None  # the subject and its consents are gone ...
        rows = s.execute(select(Suppression)).scalars().all()
    # ... but one entry stays: a keyed hash, the ground and its scope, nothing else
    assert [(r.reason, r.scope) for r in rows] == [kept]
    assert rows[0].ref == suppression.ref("alice") != "alice" and len(rows[0].ref) == 64
    assert _gate(factory, "alice", "bob") == {"alice": reason, "bob": None}
    # a re-created subject (a new request, a new batch) is still excluded
    with transaction(factory) as s:
        ensure_subject(s, "alice")
    assert _gate(factory, "alice")["alice"] == reason
    assert "suppression.recorded" in _actions(factory)


def test_an_objection_still_pending_at_erasure_is_kept(factory, tmp_path):
    _submit(factory, "alice", "objection")  # not yet decided
    _run(factory, tmp_path, _submit(factory, "alice", "erasure"))
    with factory() as s:
        rows = s.execute(select(Suppression)).scalars().all()
    assert [(r.reason, r.scope) for r in rows] == [("objected", "*")]
    assert _gate(factory, "alice")["alice"] is ExclusionReason.OBJECTED


def test_a_subject_without_objection_is_not_suppressed_after_erasure(factory, tmp_path):
    with transaction(factory) as s:
        record_consent(s, "carol", P, given=True, source="web")
    _run(factory, tmp_path, _submit(factory, "carol", "erasure"))
    with factory() as s:
        assert s.execute(select(Suppression)).first() is None
    assert _gate(factory, "carol")["carol"] is None


def test_only_a_new_consent_lifts_a_suppression(factory, tmp_path):
    with transaction(factory) as s:
        record_consent(s, "alice", P, given=False, source="web")
        record_consent(s, "alice", "analytics", given=False, source="web")
    _run(factory, tmp_path, _submit(factory, "alice", "erasure"))
    with transaction(factory) as s:
        record_consent(s, "alice", "analytics", given=True, source="web")  # another purpose
    assert _gate(factory, "alice")["alice"] is ExclusionReason.CONSENT_WITHDRAWN
    with transaction(factory) as s:
        record_consent(s, "alice", P, given=True, source="web")
    assert _gate(factory, "alice")["alice"] is None
    assert _actions(factory).count("suppression.lifted") == 2


def test_a_consent_does_not_lift_an_objection_kept_after_erasure(factory, tmp_path):
    with transaction(factory) as s:
        record_consent(s, "alice", P, given=True, source="web")
    _run(factory, tmp_path, _submit(factory, "alice", "objection"))
    _run(factory, tmp_path, _submit(factory, "alice", "erasure"))
    with transaction(factory) as s:
        record_consent(s, "alice", "newsletter", given=True, source="web")
        record_consent(s, "alice", P, given=True, source="web")
    # before the erasure a consent did not clear the objection either
    assert _gate(factory, "alice")["alice"] is ExclusionReason.OBJECTED
    with transaction(factory) as s:
        out = reinstate(s, "alice", reason="withdrew the objection by letter", actor="dpo")
    assert out["suppressions_lifted"] == 1
    assert _gate(factory, "alice")["alice"] is None
    with transaction(factory) as s, pytest.raises(Exception, match="no objection"):
        reinstate(s, "alice", reason="again", actor="dpo")


def test_reinstate_clears_a_live_objection(factory, tmp_path):
    _run(factory, tmp_path, _submit(factory, "bob", "opt_out", regime="ccpa"))
    assert _gate(factory, "bob")["bob"] is ExclusionReason.OBJECTED
    with transaction(factory) as s:
        out = reinstate(s, "bob", reason="opted back in (7026(k))", actor="dpo")
    assert out["flags_cleared"] == ["opted_out"]
    assert _gate(factory, "bob")["bob"] is None


def test_the_suppression_key_is_not_in_the_database(factory, tmp_path, monkeypatch):
    with transaction(factory) as s:
        record_consent(s, "alice", P, given=False, source="web")
    _run(factory, tmp_path, _submit(factory, "alice", "erasure"))
    # with another key (someone holding only the database), the id cannot be tested
    monkeypatch.setenv("SMT_AUDIT_KEY", "ab" * 32)
    assert _gate(factory, "alice")["alice"] is None


# --- interim restriction (Art. 18) ------------------------------------------------------------


@pytest.mark.parametrize("rtype,event,upheld", [
    ("rectification", "complete", False),
    ("rectification", "reject", False),
    ("objection", "complete", True),
    ("objection", "reject", False),
    ("objection", "cancel", False),
])
def test_a_pending_contest_or_objection_restricts_until_it_closes(factory, tmp_path, rtype,
                                                                   event, upheld):
    with transaction(factory) as s:
        record_consent(s, "alice", P, given=True, source="web")
        s.get(Subject, "alice").locale = "fr"
    payload = {"changes": {"locale": "de"}} if rtype == "rectification" else None
    rid = _submit(factory, "alice", rtype, payload=payload)
    assert _gate(factory, "alice")["alice"] is ExclusionReason.RESTRICTED
    with transaction(factory) as s:
        assert s.get(Subject, "alice").restriction_grounds == [f"request:{rid}"]
    if event == "complete":
        assert _run(factory, tmp_path, rid)["status"] == "completed"
    else:
        with transaction(factory) as s:
            request = requests.get_request(s, rid)
            requests.transition(s, request, event, actor="dpo", reason="test")
    with factory() as s:
        subject, request = s.get(Subject, "alice"), s.get(DataSubjectRequest, rid)
        assert subject.restricted is False and subject.restriction_grounds == []
        notice = request.result.get("restriction_notice")
    # Art. 18(3): the subject is informed before the restriction is lifted, in their language
    # (cancelled: the subject withdrew; the ground ends without a decision to tell them about)
    assert notice is not None and notice["locale"] in ("fr", "de")
    assert notice["fallback_locale"] is False
    assert notice["processing_resumes"] is not upheld
    if upheld:  # the objection applies now: the notice must not say processing may resume
        assert notice["title"] == "Fin de la limitation provisoire du traitement"
    else:
        assert notice["title"] in ("Levée de la limitation du traitement",
                                   "Aufhebung der Einschränkung der Verarbeitung")
    actions = _actions(factory)
    assert actions.index("subject.restriction_notice") < actions.index("subject.restriction_lifted")
    expected = ExclusionReason.OBJECTED if upheld else None
    assert _gate(factory, "alice")["alice"] is expected


def test_restriction_stays_while_another_ground_is_pending(factory, tmp_path):
    first = _submit(factory, "bob", "rectification", payload={"changes": {"locale": "es"}})
    second = _submit(factory, "bob", "objection")
    _run(factory, tmp_path, first)
    assert _gate(factory, "bob")["bob"] is ExclusionReason.RESTRICTED
    with factory() as s:
        assert s.get(Subject, "bob").restriction_grounds == [f"request:{second}"]
        assert "restriction_notice" not in s.get(DataSubjectRequest, first).result
    with transaction(factory) as s:
        requests.transition(s, requests.get_request(s, second), "reject", actor="dpo",
                            reason="compelling grounds")
    assert _gate(factory, "bob")["bob"] is None


def test_ccpa_requests_do_not_restrict(factory):
    _submit(factory, "dave", "correct", regime="ccpa", payload={"changes": {"locale": "en"}})
    assert _gate(factory, "dave")["dave"] is None


def test_a_restriction_request_holds_until_lifted_with_a_notice(factory, tmp_path):
    with transaction(factory) as s:
        ensure_subject(s, "erin", locale="ja")
    rid = _submit(factory, "erin", "restriction")
    _run(factory, tmp_path, rid)
    assert _gate(factory, "erin")["erin"] is ExclusionReason.RESTRICTED
    with transaction(factory) as s, pytest.raises(Exception, match="not a ground"):
        restriction.lift(s, s.get(Subject, "erin"), reason="x", actor="dpo", now=NOW,
                         grounds=["request:other"])
    with transaction(factory) as s:
        out = restriction.lift(s, s.get(Subject, "erin"), reason="the period you asked for ended",
                               actor="dpo", now=NOW)
    assert out["lifted"] is True and out["notice"]["locale"] == "ja"
    assert "the period you asked for ended" in out["notice"]["text"]
    assert _gate(factory, "erin")["erin"] is None
    with factory() as s:
        assert s.get(DataSubjectRequest, rid).result["restriction_notice"] == out["notice"]
        lifted = [e for e in s.execute(select(AuditEntry)).scalars()
                  if e.action == "subject.restriction_lifted"]
    assert len(lifted) == 1 and "erin" not in lifted[0].details
    with transaction(factory) as s, pytest.raises(Exception, match="not restricted"):
        restriction.lift(s, s.get(Subject, "erin"), reason="again", actor="dpo", now=NOW)


# --- CCPA receipt confirmation ----------------------------------------------------------------


def _ccpa(factory, received: datetime) -> str:
    return _submit(factory, "frank", "know", regime="ccpa", received_at=received, now=received)


def _states(factory, rid: str, now: datetime) -> dict[str, str]:
    with factory() as s:
        described = requests.describe(s.get(DataSubjectRequest, rid), now=now)
    return {d["obligation"]: d["state"] for d in described["deadlines"]}


def test_a_late_answer_does_not_meet_a_missed_receipt_confirmation(factory):
    received = datetime(2026, 11, 2, 9, 0, tzinfo=UTC)
    rid = _ccpa(factory, received)
    answered = received + timedelta(days=20)  # after the 10 business days, within 45 days
    with transaction(factory) as s:
        request = requests.get_request(s, rid)
        requests.transition(s, request, "start", actor="w", now=answered)
        requests.transition(s, request, "complete", actor="w", now=answered)
    assert _states(factory, rid, answered) == {"respond": "met", "confirm_receipt": "missed"}


def test_an_answer_within_ten_business_days_confirms_receipt(factory):
    received = datetime(2026, 11, 2, 9, 0, tzinfo=UTC)
    rid = _ccpa(factory, received)
    answered = received + timedelta(days=3)
    with transaction(factory) as s:
        request = requests.get_request(s, rid)
        requests.transition(s, request, "start", actor="w", now=answered)
        requests.transition(s, request, "complete", actor="w", now=answered)
    assert _states(factory, rid, answered) == {"respond": "met", "confirm_receipt": "met"}


def test_a_late_acknowledgement_is_recorded_as_late(factory):
    received = datetime(2026, 11, 2, 9, 0, tzinfo=UTC)
    rid = _ccpa(factory, received)
    later = received + timedelta(days=30)
    assert _states(factory, rid, later)["confirm_receipt"] == "missed"
    with transaction(factory) as s:
        requests.transition(s, requests.get_request(s, rid), "acknowledge", actor="w", now=later)
    assert _states(factory, rid, later)["confirm_receipt"] == "late"
    with transaction(factory) as s, pytest.raises(Exception, match="between the request's receipt"):
        other = requests.get_request(s, _ccpa(factory, received))
        requests.transition(s, other, "acknowledge", actor="w", now=later,
                            at=received - timedelta(hours=1))


def test_a_confirmation_sent_in_time_can_be_recorded_after_the_answer(factory):
    received = datetime(2026, 11, 2, 9, 0, tzinfo=UTC)
    rid = _ccpa(factory, received)
    answered = received + timedelta(days=20)
    with transaction(factory) as s:
        request = requests.get_request(s, rid)
        requests.transition(s, request, "start", actor="w", now=answered)
        requests.transition(s, request, "complete", actor="w", now=answered)
    assert _states(factory, rid, answered)["confirm_receipt"] == "missed"
    with transaction(factory) as s, pytest.raises(Exception, match="its closing"):
        requests.transition(s, requests.get_request(s, rid), "acknowledge", actor="w",
                            now=answered, at=answered + timedelta(hours=1))
    with transaction(factory) as s:  # it was sent on day 3; recorded now
        requests.transition(s, requests.get_request(s, rid), "acknowledge", actor="w",
                            now=answered + timedelta(days=1), at=received + timedelta(days=3))
    assert _states(factory, rid, answered)["confirm_receipt"] == "met"


# --- GDPR: the controller's time zone, the subject's holidays ---------------------------------


def test_gdpr_receipt_is_dated_in_the_controllers_time_zone(factory):
    # 23:30 UTC on Mon 9 March 2026 is still 9 March in New York but already 10 March in
    # Brussels: the controller received it on the 10th, so the month ends on 10 April
    received = datetime(2026, 3, 9, 23, 30, tzinfo=UTC)
    rid = _submit(factory, "gina", "access", time_zone="America/New_York", received_at=received,
                  controller_time_zone="Europe/Brussels")
    with factory() as s:
        request = s.get(DataSubjectRequest, rid)
        due = request.deadlines[0].due_at
        assert request.time_zone == "Europe/Brussels"
    assert due == datetime(2026, 4, 10, 23, 59, 59, tzinfo=ZoneInfo("Europe/Brussels"))


def test_dsr_submit_takes_the_subjects_country_for_holidays(factory):
    # received Tue 14 April 2026: one month later is Thu 14 May, Ascension Day in France
    received = datetime(2026, 4, 14, 10, 0, tzinfo=PARIS)
    with_fr = _submit(factory, "henri", "access", received_at=received, country="fr",
                      controller_time_zone="Europe/Paris")
    without = _submit(factory, "ines", "access", received_at=received,
                      controller_time_zone="Europe/Paris")
    with factory() as s:
        assert s.get(Subject, "henri").country == "FR"
        due_fr = s.get(DataSubjectRequest, with_fr).deadlines[0].due_at.astimezone(PARIS).date()
        due = s.get(DataSubjectRequest, without).deadlines[0].due_at.astimezone(PARIS).date()
    assert (due_fr.isoformat(), due.isoformat()) == ("2026-05-15", "2026-05-14")
    with transaction(factory) as s, pytest.raises(Exception, match="ISO 3166 alpha-2"):
        requests.submit(s, subject_id="x", rtype="access", regime="gdpr", country="France")


# --- access export: Art. 15 information, provided data, file mode -----------------------------


def _with_input_copy(factory, tmp_path: Path) -> None:
    out = tmp_path / "out"
    write_run(factory, out, "run-1", ["alice", "bob"], started_at=NOW - timedelta(days=3),
              region="americas")
    copy = out / "input-copy.csv"
    pd.DataFrame({"record_id": ["i1", "i2"], "subject_id": ["alice", "bob"],
                  "text": ["alice wrote this", "bob wrote that"]}).to_csv(copy, index=False)
    with transaction(factory) as s:
        record_inference_run(s, "run-2", str(out), "europe", "minilm", NOW,
                             input_copy_url=str(copy))
        ensure_subject(s, "alice", locale="fr", region="europe")


@pytest.mark.parametrize("rtype", ["access", "portability"])
def test_export_carries_article_15_information_and_the_provided_data(factory, tmp_path, rtype):
    _with_input_copy(factory, tmp_path)
    result = _run(factory, tmp_path, _submit(factory, "alice", rtype))
    path = Path(result["export"])
    assert stat.S_IMODE(os.stat(path).st_mode) == 0o600  # personal data: owner only
    with zipfile.ZipFile(path) as zf:
        doc = json.loads(zf.read("export.json"))
        provided_csv = zf.read("provided_data.csv").decode()
        info_txt = zf.read("information.txt").decode()
    assert [(r["record_id"], r["text"]) for r in doc["provided_data"]] == [("i1", "alice wrote this")]
    assert "alice wrote this" in provided_csv and "bob" not in provided_csv
    info = doc["information"]
    assert info["locale"] == "fr" and info["fallback_locale"] is False
    for key in ("purposes", "categories", "recipients", "retention", "rights", "transfers"):
        assert info[key] and all(isinstance(x, str) and x for x in info[key]), key
    assert info["source"] and info["automated_decisions"]
    assert len(info["rights"]) == 5  # rectification, erasure, restriction, objection, complaint
    assert any("365" in line for line in info["retention"])  # the results' policy in force
    # run-1 processed her data in americas although she resides in europe: a transfer, named
    assert any("run-1" in line for line in info["transfers"])
    # in French: not the English text
    assert "Purposes of the processing" not in info_txt and info["purposes"][0] in info_txt


def test_export_information_falls_back_to_english_and_says_so(factory, tmp_path):
    _with_input_copy(factory, tmp_path)
    result = _run(factory, tmp_path, _submit(factory, "bob", "access"))
    with zipfile.ZipFile(result["export"]) as zf:
        info = json.loads(zf.read("export.json"))["information"]
    assert info["locale"] == "en" and info["fallback_locale"] is True
    assert info["transfers"] == ["Your data was processed only in the region of its residency."]


def test_export_holds_every_stored_attribute_of_the_subject(factory, tmp_path):
    with transaction(factory) as s:
        ensure_subject(s, "frank", country="jp", subdivision="13", locale="ja",
                       time_zone="Asia/Tokyo", region="apac")
    result = _run(factory, tmp_path, _submit(factory, "frank", "access"))
    with zipfile.ZipFile(result["export"]) as zf:
        subject = json.loads(zf.read("export.json"))["subject"]
    assert {k: subject[k] for k in ("country", "subdivision", "locale", "time_zone", "region")} == {
        "country": "JP", "subdivision": "13", "locale": "ja", "time_zone": "Asia/Tokyo",
        "region": "apac"}


# --- bad input: refused before anything is stored ---------------------------------------------


@pytest.mark.parametrize("kwargs,match", [
    ({"subject_id": "car\nol"}, "printable"),
    ({"subject_id": " carol"}, "surrounding blanks"),
    ({"received_at": NOW + timedelta(days=3)}, "in the future"),
    ({"rtype": "rectification", "payload": {"changes": {"name": "Carol"}}}, "cannot rectify"),
    ({"rtype": "rectification", "payload": {"changes": {"locale": 3}}}, "as a string"),
    ({"rtype": "access", "payload": {"changes": {"locale": "fr"}}}, "only rectification"),
])
def test_submit_refuses_bad_input_and_stores_nothing(factory, kwargs, match):
    args = {"subject_id": "carol", "rtype": "access", "regime": "gdpr", **kwargs}
    with pytest.raises(Exception, match=match), transaction(factory) as s:
        requests.submit(s, **args)
    with factory() as s:
        assert s.execute(select(DataSubjectRequest)).first() is None
        assert s.execute(select(Subject)).first() is None


@pytest.mark.parametrize("regime,rtype,basis,right,absent", [
    ("ccpa", "know", "Cal. Civ. Code 1798.100", "Civil Code 1798.105", "Article 77"),
    ("pdpa", "access", "PDPA s. 21(1)", "section 22", "Article 77"),
    ("gdpr", "access", "GDPR Art. 15", "Article 77", "Civil Code"),
])
def test_the_information_follows_the_law_of_the_request(factory, tmp_path, regime, rtype, basis,
                                                         right, absent):
    result = _run(factory, tmp_path, _submit(factory, "kim", rtype, regime=regime))
    with zipfile.ZipFile(result["export"]) as zf:
        info = json.loads(zf.read("export.json"))["information"]
    assert info["basis"].startswith(basis)
    assert any(right in r for r in info["rights"])
    assert not any(absent in r for r in info["rights"])
    assert ("sale_or_sharing" in info) is (regime == "ccpa")
