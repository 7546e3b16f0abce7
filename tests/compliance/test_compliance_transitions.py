"""The request state machine: every (status, event) pair, reasons, extensions, concurrency."""

from __future__ import annotations

import itertools
import json
import multiprocessing as mp
from datetime import UTC, datetime, timedelta

import pytest
from sqlalchemy import func, select, text

from compliance import audit, requests
from compliance.db import make_engine, session_factory, transaction
from compliance.errors import ConcurrentUpdateError, InvalidTransitionError
from compliance.models import AuditEntry, DataSubjectRequest, RequestStatus
from compliance.requests import Event

S = RequestStatus
# Written out independently of compliance.requests.TRANSITIONS: the expected table.
EXPECTED = {
    (S.RECEIVED, Event.ACKNOWLEDGE): S.RECEIVED,
    (S.IN_PROGRESS, Event.ACKNOWLEDGE): S.IN_PROGRESS,
    (S.FAILED, Event.ACKNOWLEDGE): S.FAILED,
    (S.COMPLETED, Event.ACKNOWLEDGE): S.COMPLETED,
    (S.REJECTED, Event.ACKNOWLEDGE): S.REJECTED,
    (S.RECEIVED, Event.EXTEND): S.RECEIVED,
    (S.IN_PROGRESS, Event.EXTEND): S.IN_PROGRESS,
    (S.FAILED, Event.EXTEND): S.FAILED,
    (S.RECEIVED, Event.START): S.IN_PROGRESS,
    (S.FAILED, Event.START): S.IN_PROGRESS,
    (S.IN_PROGRESS, Event.COMPLETE): S.COMPLETED,
    (S.IN_PROGRESS, Event.FAIL): S.FAILED,
    (S.RECEIVED, Event.REJECT): S.REJECTED,
    (S.IN_PROGRESS, Event.REJECT): S.REJECTED,
    (S.RECEIVED, Event.CANCEL): S.CANCELLED,
    (S.FAILED, Event.CANCEL): S.CANCELLED,
}
# How to reach each status from a new request.
PATH = {
    S.RECEIVED: [],
    S.IN_PROGRESS: [Event.START],
    S.FAILED: [Event.START, Event.FAIL],
    S.COMPLETED: [Event.START, Event.COMPLETE],
    S.REJECTED: [Event.REJECT],
    S.CANCELLED: [Event.CANCEL],
}
T0 = datetime(2026, 11, 25, 18, 0, tzinfo=UTC)


def _new(session, regime="ccpa", rtype="know"):
    return requests.submit(
        session, subject_id="subj-1", rtype=rtype, regime=regime, received_at=T0, now=T0
    )


def _audit_count(session) -> int:
    return session.execute(select(func.count()).select_from(AuditEntry)).scalar_one()


def test_table_matches_the_expected_table():
    assert {k: v for k, v in requests.TRANSITIONS.items() if k[0] is not None} == EXPECTED
    assert requests.TRANSITIONS[(None, Event.SUBMIT)] == S.RECEIVED


@pytest.mark.parametrize(("status", "event"), list(itertools.product(S, Event)))
def test_every_status_event_pair(factory, status, event):
    with transaction(factory) as s:
        request = _new(s)
        for step in PATH[status]:
            requests.transition(s, request, step, actor="t", reason="r", now=T0)
        assert request.status == status
        before, version = _audit_count(s), request.version
        expected = EXPECTED.get((status, event))
        if expected is None:
            with pytest.raises(InvalidTransitionError):
                requests.transition(s, request, event, actor="t", reason="r", now=T0)
            assert request.status == status and request.version == version
            assert _audit_count(s) == before
            return
        requests.transition(s, request, event, actor="t", reason="r", now=T0)
        assert request.status == expected
        assert _audit_count(s) == before + 1
        last = s.execute(select(AuditEntry).order_by(AuditEntry.seq.desc())).scalars().first()
        assert last.action == f"dsr.{event.value}" and last.object_id == request.id
        assert json.loads(last.details)["to"] == expected.value
        assert audit.verify(s).ok


@pytest.mark.parametrize("event", [Event.EXTEND, Event.REJECT, Event.FAIL, Event.CANCEL])
def test_events_that_need_a_reason(factory, event):
    with transaction(factory) as s:
        request = _new(s)
        if event is Event.FAIL:
            requests.transition(s, request, Event.START, actor="t", now=T0)
        with pytest.raises(InvalidTransitionError, match="reason"):
            requests.transition(s, request, event, actor="t", now=T0)


def test_unknown_event_refused(factory):
    with transaction(factory) as s:
        request = _new(s)
        with pytest.raises(InvalidTransitionError, match="unknown event"):
            requests.transition(s, request, "approve", actor="t")
        assert request.status == S.RECEIVED


def test_extension_once_and_only_before_the_deadline(factory):
    with transaction(factory) as s:
        request = _new(s, regime="gdpr", rtype="access")
        respond = request.deadlines[0]
        original = respond.due_at
        with pytest.raises(InvalidTransitionError, match="too late"):
            requests.transition(
                s, request, Event.EXTEND, actor="t", reason="complex", now=original + timedelta(seconds=1)
            )
        requests.transition(s, request, Event.EXTEND, actor="t", reason="complex", now=T0)
        assert respond.due_at > original + timedelta(days=55)
        assert request.extension_reason == "complex"
        with pytest.raises(InvalidTransitionError, match="once"):
            requests.transition(s, request, Event.EXTEND, actor="t", reason="again", now=T0)


def test_acknowledge_meets_the_receipt_deadline_once(factory):
    with transaction(factory) as s:
        request = _new(s)
        requests.transition(s, request, Event.ACKNOWLEDGE, actor="t", now=T0)
        confirm = [d for d in request.deadlines if d.obligation == "confirm_receipt"][0]
        assert confirm.met_at == T0
        with pytest.raises(InvalidTransitionError, match="acknowledge"):
            requests.transition(s, request, Event.ACKNOWLEDGE, actor="t", now=T0)
        gdpr = _new(s, regime="gdpr", rtype="access")
        with pytest.raises(InvalidTransitionError, match="only CCPA"):
            requests.transition(s, gdpr, Event.ACKNOWLEDGE, actor="t", now=T0)


def test_stale_writer_is_refused(factory):
    with transaction(factory) as s:
        request_id = _new(s).id
    s1, s2 = factory(), factory()
    r1, r2 = requests.get_request(s1, request_id), requests.get_request(s2, request_id)
    requests.transition(s1, r1, Event.START, actor="w1")
    s1.commit()
    with pytest.raises(ConcurrentUpdateError):
        requests.transition(s2, r2, Event.CANCEL, actor="w2", reason="r")
    s2.rollback()
    s1.close(), s2.close()
    with factory() as s:
        assert requests.get_request(s, request_id).status == S.IN_PROGRESS


def _claim_in_process(url: str, schema: str | None, request_id: str, worker: str, barrier, out):
    engine = make_engine(url, schema=schema)
    factory = session_factory(engine)
    barrier.wait()
    with factory() as s, s.begin():
        claimed = requests.claim(s, request_id, worker=worker)
        if claimed is not None:
            s.execute(text("select pg_sleep(0.5)"))  # hold the row lock while the other waits
    out.put((worker, claimed is not None))
    engine.dispose()


def test_two_processes_never_claim_the_same_request(backend, factory):
    if backend.name != "postgresql":
        pytest.skip("row locking is PostgreSQL's; SQLite serialises writers as a whole")
    with transaction(factory) as s:
        request_id = _new(s).id
    ctx = mp.get_context("fork")  # fork: no re-import in the children (spawn costs seconds)
    barrier, out = ctx.Barrier(2), ctx.Queue()
    procs = [
        ctx.Process(
            target=_claim_in_process,
            args=(backend.url, backend.schema, request_id, f"w{i}", barrier, out),
        )
        for i in range(2)
    ]
    for p in procs:
        p.start()
    for p in procs:
        p.join(60)
        assert p.exitcode == 0
    results = dict(out.get(timeout=5) for _ in procs)
    assert sorted(results.values()) == [False, True]
    with factory() as s:
        starts = s.execute(
            select(func.count()).select_from(AuditEntry).where(AuditEntry.action == "dsr.start")
        ).scalar_one()
        assert starts == 1
        assert s.get(DataSubjectRequest, request_id).claimed_by in results
