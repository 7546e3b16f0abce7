"""Party services (mpc/service.py) and persistent model sessions (mpc/client.py), attacked and
exercised as their operators would: real service processes on loopback, real TLS, real MPC.

A tiny random classifier keeps each session short; every result is checked against plaintext.
"""

from __future__ import annotations

import json
import signal
import threading
import time
import urllib.request

import numpy as np
import pytest

from mpc import client, errors, identity
from mpc.identity import Identity

TEXTS_A = ["the parcel arrived damaged", "please reset my password", "invoice 4471 is overdue"]
TEXTS_B = ["my card was charged twice", "where is my refund", "cancel the subscription", "thanks!"]


def _ids(*data_owners: str) -> dict[str, Identity]:
    """Keys for the services and for each named data owner; the services trust every data owner
    listed (``data-owner-<name>.crt``), each data owner pins the two services."""
    made = {r: identity.generate(r, days=1) for r in ("model-owner", "dealer")}
    dos = {n: identity.generate("data-owner", days=1) for n in data_owners}
    trusted_dos = {f"data-owner-{n}": cert for n, (_, cert) in dos.items()}
    out = {}
    for role, (key, cert) in made.items():
        other = "dealer" if role == "model-owner" else "model-owner"
        out[role] = Identity(role=role, key_pem=key, cert_pem=cert,
                             peers={role: cert, other: made[other][1], **trusted_dos})  # fmt: skip
    for n, (key, cert) in dos.items():
        out[n] = Identity(role="data-owner", key_pem=key, cert_pem=cert,
                          peers={"data-owner": cert, "model-owner": made["model-owner"][1], "dealer": made["dealer"][1]})  # fmt: skip
    return out


class Running:
    def __init__(self, ids, model_dir, tmp_path, **mo_options):
        self.ids, self.model_dir, self.tmp = ids, model_dir, tmp_path
        self.dealer, self.dealer_info = client.start_service("dealer", ids["dealer"], log_path=tmp_path / "dealer.log")
        self.mo = self.mo_info = None
        self.start_model_owner(**mo_options)

    def start_model_owner(self, port: int = 0, **options):
        extra = {"model_name": "tiny", **options}
        if port:
            extra["listen"] = ["127.0.0.1", port]
        self.mo, self.mo_info = client.start_service("model-owner", self.ids["model-owner"], model=str(self.model_dir),
                                                     extra=extra, log_path=self.tmp / "model-owner.log")  # fmt: skip

    def services(self, who: str) -> client.Services:
        return client.Services(model_owner=tuple(self.mo_info["listen"]), dealer=tuple(self.dealer_info["listen"]),
                               identity=self.ids[who])  # fmt: skip

    def get(self, role: str, path: str):
        info = self.mo_info if role == "model-owner" else self.dealer_info
        host, port = info["metrics"]
        try:
            with urllib.request.urlopen(f"http://{host}:{port}{path}", timeout=5) as r:
                return r.status, r.read().decode()
        except urllib.error.HTTPError as err:
            return err.code, err.read().decode()

    def metric(self, role: str, name: str, labels: str = "") -> float:
        _, text = self.get(role, "/metrics")
        for line in text.splitlines():
            if line.startswith(name + (("{" + labels + "}") if labels else " ")):
                return float(line.rsplit(" ", 1)[1])
        return 0.0

    def stop(self):
        for p in (self.mo, self.dealer):
            if p is not None and p.poll() is None:
                p.stdin.close()
                p.wait(timeout=30)


@pytest.fixture
def running(tiny_classifier_dir, tmp_path):
    made = []

    def start(*data_owners, **mo_options):
        r = Running(_ids(*data_owners), tiny_classifier_dir, tmp_path, **mo_options)
        made.append(r)
        return r

    yield start
    for r in made:
        r.stop()


@pytest.fixture(scope="module")
def reference(tiny_classifier_dir):
    from mpc.session import plaintext_forward

    return lambda texts: plaintext_forward(tiny_classifier_dir, texts, max_length=16).numpy()


def _session(r: Running, who: str, **kw) -> client.ModelSession:
    return client.ModelSession(r.services(who), model="tiny", connect_timeout=kw.pop("connect_timeout", 30), **kw)


def test_two_data_owners_at_once_get_their_own_results(running, reference):
    r = running("a", "b", max_sessions=2)
    results, failures = {}, []
    barrier = threading.Barrier(2)

    def work(who, texts):
        s = _session(r, who)
        try:
            s.open()
            barrier.wait(timeout=120)  # both sessions are open at the same time
            if who == "a":
                status, body = r.get("model-owner", "/healthz")
                results["health"] = (status, json.loads(body))
            barrier.wait(timeout=120)
            results[who] = [s.infer(texts, max_length=16).outputs, s.infer(texts[::-1], max_length=16).outputs]
        except Exception as err:  # noqa: BLE001 - reported below
            failures.append(err)
            barrier.abort()
        finally:
            s.close()

    threads = [threading.Thread(target=work, args=("a", TEXTS_A)), threading.Thread(target=work, args=("b", TEXTS_B))]
    for t in threads:
        t.start()
    for t in threads:
        t.join(timeout=600)
    assert not failures, failures
    assert results["health"][0] == 200 and results["health"][1]["sessions"] == 2
    for who, texts in (("a", TEXTS_A), ("b", TEXTS_B)):
        first, second = results[who]
        assert np.abs(first - reference(texts)).max() < 1e-2
        assert np.abs(second - reference(texts[::-1])).max() < 1e-2
    deadline = time.monotonic() + 30
    while r.metric("model-owner", "smt_service_sessions_total", 'outcome="completed"') < 2 and time.monotonic() < deadline:
        time.sleep(0.2)
    assert r.metric("model-owner", "smt_service_sessions_total", 'outcome="completed"') == 2
    assert r.metric("model-owner", "smt_service_inferences_total") == 4
    assert r.metric("model-owner", "smt_service_bytes_total") > 0
    _, text = r.get("model-owner", "/metrics")
    assert "sha256" not in text and "parcel" not in text  # no identities, no texts in metrics


def test_beyond_capacity_is_refused_as_busy(running):
    r = running("a", "b", max_sessions=1)
    first = _session(r, "a")
    first.open()
    try:
        with pytest.raises(errors.ServiceRefused) as err:
            _session(r, "b").open()
        where = "{}:{}".format(*r.mo_info["listen"])
        assert where in str(err.value) and "--max-sessions 1" in str(err.value)
        assert r.metric("model-owner", "smt_service_refusals_total", 'reason="busy"') == 1
        assert r.get("model-owner", "/readyz")[0] == 503  # full: a load balancer should look elsewhere
    finally:
        first.close()


def test_unknown_data_owner_is_refused(running, tiny_classifier_dir):
    r = running("a")
    stranger = identity.generate("data-owner", days=1)
    svc = r.services("a")
    impostor = Identity(role="data-owner", key_pem=stranger[0], cert_pem=stranger[1],
                        peers={**svc.identity.peers, "data-owner": stranger[1]})  # fmt: skip
    s = client.ModelSession(client.Services(model_owner=svc.model_owner, dealer=svc.dealer, identity=impostor),
                            model="tiny", connect_timeout=20)  # fmt: skip
    with pytest.raises(errors.IdentityError) as err:
        s.open()
    assert "{}:{}".format(*svc.dealer) in str(err.value)  # the first service it asked refused it
    assert r.metric("dealer", "smt_service_refusals_total", 'reason="identity"') >= 1
    assert r.metric("dealer", "smt_service_sessions_active") == 0
    assert r.metric("model-owner", "smt_service_sessions_active") == 0


def test_sigterm_lets_the_running_inference_finish(running, reference):
    r = running("a")
    s = _session(r, "a", connect_timeout=5)
    s.open()
    texts = [f"{t} number {i}" for i in range(40) for t in TEXTS_A][:96]
    out, failures = {}, []

    def work():
        try:
            out["v"] = s.infer(texts, max_length=16).outputs
        except Exception as err:  # noqa: BLE001
            failures.append(err)

    t = threading.Thread(target=work)
    t.start()
    time.sleep(1.0)
    assert t.is_alive(), "the inference must still be running when SIGTERM arrives"
    r.mo.send_signal(signal.SIGTERM)
    t.join(timeout=300)
    assert not failures, failures
    assert np.abs(out["v"] - reference(texts)).max() < 1e-2
    assert r.mo.wait(timeout=60) == 0  # it drained and exited by itself
    with pytest.raises(errors.TransportError) as err:  # and the next session cannot reach it
        s.infer(TEXTS_A, max_length=16)
    assert "{}:{}".format(*r.mo_info["listen"]) in str(err.value) and "unreachable" in str(err.value)
    s.close()


def test_idle_session_ends_on_restart_and_the_client_renews(running, reference):
    r = running("a")
    s = _session(r, "a")
    assert np.abs(s.infer(TEXTS_A, max_length=16).outputs - reference(TEXTS_A)).max() < 1e-2
    port = r.mo_info["listen"][1]
    t0 = time.monotonic()
    r.mo.send_signal(signal.SIGTERM)
    assert r.mo.wait(timeout=30) == 0
    assert time.monotonic() - t0 < 20  # an idle session does not hold the drain
    r.start_model_owner(port=port)  # the restarted service, same address and identity
    got = s.infer(TEXTS_B, max_length=16).outputs
    assert np.abs(got - reference(TEXTS_B)).max() < 1e-2
    assert s.sessions_opened == 2
    s.close()


def test_sessions_renew_after_their_inference_count(running, reference):
    r = running("a")
    s = _session(r, "a", max_inferences=2)
    opened = []
    for i in range(3):
        texts = TEXTS_A if i % 2 == 0 else TEXTS_B
        out = s.infer(texts, max_length=16)
        assert np.abs(out.outputs - reference(texts)).max() < 1e-2
        opened.append(out.cost.get("session_setup_seconds", 0) > 0)
    assert s.sessions_opened == 2
    assert opened == [True, False, True]  # the set-up is charged to the inference that paid it
    s.close()


def test_bad_input_is_answered_without_ending_the_session(running, reference):
    r = running("a")
    s = _session(r, "a")
    s.open()
    with pytest.raises(errors.InputError, match="record 1: empty text"):
        s.infer(["fine", "   "], max_length=16)
    assert np.abs(s.infer(TEXTS_A, max_length=16).outputs - reference(TEXTS_A)).max() < 1e-2
    assert s.sessions_opened == 1
    s.close()


def test_service_refuses_to_start_without_trusted_data_owners(tmp_path):
    from mpc.service import ServiceConfig

    key, cert = identity.generate("dealer", days=1)
    ident = Identity(role="dealer", key_pem=key, cert_pem=cert, peers={"dealer": cert})
    with pytest.raises(errors.ConfigurationError, match="data-owner"):
        ServiceConfig(role="dealer", identity=ident)


def test_weight_mask_is_bound_to_its_weight():
    """Protocol check in real parties: products through one mask across many blocks equal the
    plaintext product; another weight tensor is refused; a new mask opens a fresh W - b."""
    from mpc.launcher import launch

    out = launch("mpc.probe_jobs:weight_mask_job", {}, parties=2, timeout=300).result
    assert out["max_error"] < 1e-3
    assert out["refused"] == "MaskReuseError"
    assert out["fresh_mask"] is True


def test_another_data_owner_cannot_join_a_session(running):
    """B, a data owner the services trust, learns A's session id and tries to link into it
    (as rank 0, at both services): refused, because the session pinned A's certificate."""
    from mpc import transport
    from mpc.service import new_session_id

    r = running("a", "b")
    a, b = r.services("a"), r.services("b")
    sid = new_session_id()
    cfg = transport.ServiceMeshConfig(rank=0, parties=2, identity=a.identity, session=sid,
                                      endpoints={1: a.model_owner, 2: a.dealer}, open={"model": "tiny"})  # fmt: skip
    controls = transport.open_sessions(cfg, time.monotonic() + 30)  # A's session exists at both services
    try:
        intruder = transport.ServiceMeshConfig(rank=0, parties=2, identity=b.identity, session=sid,
                                               endpoints={1: b.model_owner, 2: b.dealer}, timeout=10)  # fmt: skip
        for peer in (1, 2):
            with pytest.raises(errors.ServiceRefused, match="not the one the session pinned") as err:
                transport._dial_link(intruder, peer, time.monotonic() + 10)
            assert err.value.code == "not-allowed"
        assert r.metric("model-owner", "smt_service_refusals_total", 'reason="not-allowed"') == 1
        assert r.metric("dealer", "smt_service_refusals_total", 'reason="not-allowed"') == 1
    finally:
        for c in controls:
            c.close()
