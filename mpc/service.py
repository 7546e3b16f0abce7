"""Party services: ``smt serve model-owner`` and ``smt serve dealer``, run by their owners.

A service is a small supervisor (no torch in it) with one TLS 1.3 port.  Every connection starts
with ``SMT-SVC1`` and a handshake in which the caller presents its certificate; the service
accepts only certificates it was configured to trust (its identity directory: ``data-owner*.crt``
for the data owners it serves, ``model-owner*.crt`` / ``dealer*.crt`` for its peer service) and
maps the certificate's fingerprint to a role.  Then one control message, inside TLS:

* ``open`` (data owners only): start a model session.  The service checks the request (its own
  rank, the model it serves, the peer service's certificate), its capacity (``--max-sessions``:
  beyond it the answer is ``busy``) and that it is not draining, then starts a *session worker*:
  ``python -m mpc.party`` for its role, with the service's key and exactly this session's peers
  pinned (the opener's certificate, the peer service's), its parameters on a pipe.  The
  connection stays open while the session lives: when either side closes it, the session ends.
* ``link``: a mesh link of a session (mpc/transport.py ``connect_service_mesh``).  The caller's
  certificate must be the one this session pinned for the rank it claims; the service answers,
  then hands the socket and the link key to the session's worker over a Unix socket
  (``SCM_RIGHTS``).  From there the worker speaks AES-256-GCM frames on it; the supervisor
  never sees the traffic.

Sessions run in separate processes, so two data owners' sessions never share memory, keys or
links.  SIGTERM: the service stops accepting, tells every worker to finish (an idle session ends
at once, a running inference completes), waits up to ``--drain-timeout`` and exits.  Health and
Prometheus metrics on ``--metrics-listen`` (``/healthz``, ``/metrics``): sessions active and by
outcome, refusals by reason, inferences, bytes, seconds; no personal data, no fingerprints.
"""

from __future__ import annotations

import contextlib
import json
import logging
import os
import re
import secrets
import shutil
import signal
import socket
import ssl
import subprocess
import sys
import tempfile
import threading
import time
from dataclasses import dataclass, field
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from pathlib import Path

from prometheus_client import CollectorRegistry, Counter, Gauge, Histogram, generate_latest

from mpc.errors import ConfigurationError
from mpc.identity import Identity, der_fingerprint, fingerprint
from mpc.links import SERVICE_PREAMBLE, TlsLink, recv_exact, tls_server_context

log = logging.getLogger("smt.service")

SERVICE_ROLES = {"model-owner": 1, "dealer": 2}  # rank in a two-party session (the dealer is rank 2)
_PEER = {"model-owner": "dealer", "dealer": "model-owner"}
_SESSION_ID = re.compile(r"^[0-9a-f]{32}$")
_ROLE_PREFIXES = ("data-owner", "model-owner", "dealer")


def parse_address(text: str, what: str) -> tuple[str, int]:
    host, sep, port = text.rpartition(":")
    if not sep or not host or not port.isdigit():
        raise ConfigurationError(f"{what} must be HOST:PORT (got {text!r})")
    return host.strip("[]"), int(port)


@dataclass(kw_only=True)
class ServiceConfig:
    role: str  # model-owner | dealer
    identity: Identity  # own key and certificate; ``peers``: every trusted certificate by file stem
    listen: tuple[str, int] = ("127.0.0.1", 0)
    metrics_listen: tuple[str, int] | None = None
    model: str | None = None  # model-owner: a model name ("minilm") or save_pretrained folder
    model_name: str | None = None  # what data owners ask for (default: the model argument)
    max_sessions: int = 4
    drain_timeout: float = 300.0
    session_lifetime: float = 0.0  # seconds; 0: no limit of this service's own
    session_inferences: int = 0
    connect_timeout: float = 60.0
    threads: int = 1
    device: str = "cpu"

    def __post_init__(self) -> None:
        if self.role not in SERVICE_ROLES:
            raise ConfigurationError(f"a service is model-owner or dealer (got {self.role!r})")
        if self.role == "model-owner" and not self.model:
            raise ConfigurationError("the model-owner service needs --model (a name like minilm or a save_pretrained folder)")
        if self.max_sessions < 1:
            raise ConfigurationError("--max-sessions must be at least 1")
        if not self.trusted("data-owner"):
            raise ConfigurationError("no data-owner certificate is trusted: put data-owner*.crt (from each data owner's "
                                     "`smt identity create`) in the identity directory")  # fmt: skip
        if not self.trusted(_PEER[self.role]):
            raise ConfigurationError(f"no {_PEER[self.role]} certificate is trusted: put {_PEER[self.role]}.crt in the "
                                     "identity directory")  # fmt: skip

    def trusted(self, role: str) -> dict[str, str]:
        """fingerprint -> certificate PEM of every trusted certificate of ``role``."""
        out = {}
        for stem, pem in self.identity.peers.items():
            if pem == self.identity.cert_pem:
                continue
            if max((r for r in _ROLE_PREFIXES if stem.startswith(r)), key=len, default=None) == role:
                out[fingerprint(pem)] = pem
        return out


@dataclass
class Session:
    sid: str
    opener: str  # the data owner's fingerprint
    peers: dict[int, str]  # rank -> fingerprint expected on links from that rank
    proc: subprocess.Popen
    inbox: socket.socket  # our end of the Unix socket that hands links to the worker
    control: socket.socket
    workdir: Path
    started: float = field(default_factory=time.monotonic)


class Metrics:
    def __init__(self, role: str):
        self.registry = CollectorRegistry()
        r = self.registry
        self.active = Gauge("smt_service_sessions_active", "model sessions running", registry=r)
        self.sessions = Counter("smt_service_sessions", "model sessions ended, by outcome", ["outcome"], registry=r)
        self.refused = Counter("smt_service_refusals", "connections or requests refused, by reason", ["reason"], registry=r)
        self.inferences = Counter("smt_service_inferences", "inferences served in ended sessions", registry=r)
        self.bytes = Counter("smt_service_bytes", "bytes this service's sessions sent (ended sessions)", registry=r)
        self.seconds = Histogram("smt_service_session_seconds", "duration of ended model sessions", registry=r,
                                 buckets=(1, 5, 30, 60, 300, 900, 3600, 14400))  # fmt: skip
        self.draining = Gauge("smt_service_draining", "1 while the service drains after SIGTERM", registry=r)
        self.info = Gauge("smt_service_info", "this service's role", ["role"], registry=r)
        self.info.labels(role=role).set(1)


class Service:
    def __init__(self, cfg: ServiceConfig):
        self.cfg = cfg
        self.rank = SERVICE_ROLES[cfg.role]
        self.trust: dict[str, str] = {}  # fingerprint -> role
        for role in _ROLE_PREFIXES:
            for fp in cfg.trusted(role):
                self.trust[fp] = role
        self.ctx = tls_server_context(cfg.identity, [pem for r in _ROLE_PREFIXES for pem in cfg.trusted(r).values()])
        self.sessions: dict[str, Session] = {}
        self.lock = threading.Lock()
        self.draining = threading.Event()
        self.stopped = threading.Event()
        self.metrics = Metrics(cfg.role)
        self.listener: socket.socket | None = None
        self.http: ThreadingHTTPServer | None = None
        from mpc.launcher import session_dir

        self.root = session_dir("smt-service-")  # 0700, names us; a crashed service's is swept

    # -- lifecycle -----------------------------------------------------------------------
    def start(self) -> dict:
        host, port = self.cfg.listen
        family = socket.AF_INET6 if ":" in host else socket.AF_INET
        s = socket.socket(family, socket.SOCK_STREAM)
        s.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)
        s.bind((host, port))
        s.listen(128)
        self.listener = s
        threading.Thread(target=self._accept_loop, daemon=True, name="smt-service-accept").start()
        ready = {"role": self.cfg.role, "listen": [host, s.getsockname()[1]],
                 "fingerprint": self.cfg.identity.fingerprint}  # fmt: skip
        if self.cfg.metrics_listen:
            self.http = _http_server(self, self.cfg.metrics_listen)
            ready["metrics"] = [self.cfg.metrics_listen[0], self.http.server_address[1]]
            threading.Thread(target=self.http.serve_forever, daemon=True, name="smt-service-http").start()
        log.info("%s service listening on %s:%d (metrics %s)", self.cfg.role, host, ready["listen"][1], ready.get("metrics"))
        return ready

    def drain(self, timeout: float | None = None) -> None:
        """Stop accepting; let every session finish its running inference; stop."""
        if self.draining.is_set():
            return
        self.draining.set()
        self.metrics.draining.set(1)
        if self.listener is not None:
            with contextlib.suppress(OSError):
                self.listener.close()
        with self.lock:
            running = list(self.sessions.values())
        log.info("draining: %d session(s) finish their running inference", len(running))
        for s in running:
            with contextlib.suppress(ProcessLookupError):
                s.proc.send_signal(signal.SIGTERM)
        deadline = time.monotonic() + (self.cfg.drain_timeout if timeout is None else timeout)
        for s in running:
            try:
                s.proc.wait(timeout=max(0.1, deadline - time.monotonic()))
            except subprocess.TimeoutExpired:
                log.warning("session %s did not finish within the drain timeout; stopped", s.sid[:8])
                with contextlib.suppress(ProcessLookupError):
                    os.killpg(s.proc.pid, signal.SIGKILL)
        time.sleep(0.2)  # the reapers record the outcomes
        self.stop()

    def stop(self) -> None:
        with self.lock:
            running = list(self.sessions.values())
        for s in running:
            with contextlib.suppress(ProcessLookupError):
                os.killpg(s.proc.pid, signal.SIGKILL)
        if self.http is not None:
            self.http.shutdown()
        shutil.rmtree(self.root, ignore_errors=True)
        self.stopped.set()

    # -- connections ---------------------------------------------------------------------
    def _accept_loop(self) -> None:
        assert self.listener is not None
        while not self.draining.is_set():
            try:
                raw, addr = self.listener.accept()
            except OSError:
                return
            threading.Thread(target=self._handle, args=(raw, addr), daemon=True, name="smt-service-conn").start()

    def _refuse(self, tls: TlsLink | None, raw: socket.socket, reason: str, message: str) -> None:
        self.metrics.refused.labels(reason=reason).inc()
        log.warning("refused (%s): %s", reason, message)
        if tls is not None:
            with contextlib.suppress(Exception):
                tls.send_msg({"ok": False, "code": reason, "error": message})
        with contextlib.suppress(OSError):
            raw.close()

    def _handle(self, raw: socket.socket, addr) -> None:
        where = f"{addr[0]}:{addr[1]}"
        raw.setsockopt(socket.IPPROTO_TCP, socket.TCP_NODELAY, 1)
        deadline = time.monotonic() + 30
        tls = None
        try:
            raw.settimeout(10)
            if recv_exact(raw, len(SERVICE_PREAMBLE)) != SERVICE_PREAMBLE:
                return self._refuse(None, raw, "bad-request", f"{where}: not an SMT service connection")
            tls = TlsLink(raw, self.ctx, server_side=True, deadline=deadline)
            try:
                tls.handshake()
            except (ssl.SSLError, OSError) as err:
                reason = getattr(err, "verify_message", None) or getattr(err, "reason", None) or str(err)
                return self._refuse(None, raw, "identity", f"{where}: TLS handshake failed ({reason}); its "
                                    "certificate is not one this service trusts")  # fmt: skip
            fp = der_fingerprint(tls.getpeercert())
            role = self.trust.get(fp)
            if role is None:
                return self._refuse(tls, raw, "identity", f"{where}: certificate {fp} is not trusted")
            msg = tls.recv_msg()
            op = msg.get("op")
            if op == "open":
                return self._open(tls, raw, role, fp, msg)
            if op == "link":
                return self._link(tls, raw, fp, msg)
            return self._refuse(tls, raw, "bad-request", f"unknown operation {op!r}")
        except Exception as err:  # noqa: BLE001 - one bad connection never stops the service
            self._refuse(None, raw, "bad-request", f"{where}: {type(err).__name__}: {err}")
        return None

    def _open(self, tls: TlsLink, raw: socket.socket, role: str, fp: str, msg: dict) -> None:
        if role != "data-owner":
            return self._refuse(tls, raw, "not-allowed", f"only a data owner may open a session (this is {role})")
        sid = str(msg.get("session", ""))
        if not _SESSION_ID.match(sid) or msg.get("parties") != 2 or msg.get("rank") != self.rank:
            return self._refuse(tls, raw, "bad-request", f"this {self.cfg.role} service takes two-party sessions at "
                                f"rank {self.rank} with a 128-bit hex session id")  # fmt: skip
        if self.draining.is_set():
            return self._refuse(tls, raw, "draining", "the service is shutting down; retry against its replacement")
        peer_role = _PEER[self.cfg.role]
        peer_fp = str(msg.get("peer_fingerprint"))
        peer_pem = self.cfg.trusted(peer_role).get(peer_fp)
        if peer_pem is None:
            return self._refuse(tls, raw, "not-allowed", f"the {peer_role} with certificate {peer_fp} is not one this "
                                "service trusts")  # fmt: skip
        params: dict = {"identity": {"role": self.cfg.role, "key": self.cfg.identity.key_pem,
                                     "cert": self.cfg.identity.cert_pem,
                                     "peers": {"data-owner": self.cfg.trusted("data-owner")[fp], peer_role: peer_pem,
                                               self.cfg.role: self.cfg.identity.cert_pem}}}  # fmt: skip
        endpoints = {}
        if self.cfg.role == "model-owner":
            wanted = msg.get("model")
            served = self.cfg.model_name or str(self.cfg.model)
            if wanted not in (None, served):
                return self._refuse(tls, raw, "wrong-model", f"this model-owner service serves {served!r}, not {wanted!r}")
            dealer = msg.get("dealer")
            if not (isinstance(dealer, list) and len(dealer) == 2):
                return self._refuse(tls, raw, "bad-request", "an open request must name the dealer's endpoint")
            endpoints = {"2": [str(dealer[0]), int(dealer[1])]}
            params.update(model=str(self.cfg.model), model_name=served, lifetime_seconds=self.cfg.session_lifetime,
                          max_inferences=self.cfg.session_inferences)  # fmt: skip
        with self.lock:
            if sid in self.sessions:
                return self._refuse(tls, raw, "bad-request", "a session with this id exists")
            if len(self.sessions) >= self.cfg.max_sessions:
                return self._refuse(tls, raw, "busy", f"{len(self.sessions)} sessions are running, the limit of this "
                                    f"service (--max-sessions {self.cfg.max_sessions}); retry later")  # fmt: skip
            peers = {0: fp}
            if self.cfg.role == "dealer":
                peers[1] = peer_fp
            session = self._spawn(sid, fp, peers, params, endpoints, raw)
            self.sessions[sid] = session
            self.metrics.active.set(len(self.sessions))
        tls.send_msg({"ok": True, "session": sid})
        log.info("session %s opened (%d running)", sid[:8], len(self.sessions))
        threading.Thread(target=self._watch_control, args=(session,), daemon=True, name="smt-service-ctl").start()
        threading.Thread(target=self._reap, args=(session,), daemon=True, name="smt-service-reap").start()
        return None

    def _spawn(self, sid: str, opener: str, peers: dict, params: dict, endpoints: dict, control) -> Session:
        workdir = Path(tempfile.mkdtemp(prefix=f"s-{sid[:8]}-", dir=self.root))
        ours, theirs = socket.socketpair(socket.AF_UNIX, socket.SOCK_STREAM)
        params["mesh"] = {"session": sid, "endpoints": endpoints, "inbox_fd": theirs.fileno()}
        cmd = [sys.executable, "-m", "mpc.party", "--role", self.cfg.role, "--rank", str(self.rank),
               "--world-size", "2", "--job", "mpc.model_session:model_session_job", "--from-launcher",
               "--report", str(workdir / "report.json"), "--device", self.cfg.device,
               "--threads", str(self.cfg.threads), "--connect-timeout", str(self.cfg.connect_timeout)]  # fmt: skip
        from mpc.launcher import _MALLOC, _send_params

        env = {**_MALLOC, **os.environ, "OMP_NUM_THREADS": str(self.cfg.threads), "SMT_SESSION_DIR": str(workdir)}
        with open(workdir / "party.log", "wb") as fh:
            proc = subprocess.Popen(cmd, stdin=subprocess.PIPE, stdout=fh, stderr=subprocess.STDOUT, env=env,
                                    pass_fds=(theirs.fileno(),), start_new_session=True)  # fmt: skip
        theirs.close()
        _send_params(proc, params)
        return Session(sid, opener, peers, proc, ours, control, workdir)

    def _link(self, tls: TlsLink, raw: socket.socket, fp: str, msg: dict) -> None:
        sid = str(msg.get("session", ""))
        with self.lock:
            session = self.sessions.get(sid)
        if session is None:
            return self._refuse(tls, raw, "unknown-session", "no such session here (not opened yet, or ended)")
        rank = msg.get("rank")
        if msg.get("to") != self.rank or not isinstance(rank, int) or session.peers.get(rank) != fp:
            return self._refuse(tls, raw, "not-allowed", f"this certificate is not the one the session pinned for rank {rank}")
        key = str(msg.get("key", ""))
        if len(key) != 64:
            return self._refuse(tls, raw, "bad-request", "a link needs a 256-bit key")
        tls.send_msg({"ok": True})
        if not tls.drained():
            return self._refuse(None, raw, "bad-request", "data arrived before the link was set up")
        info = json.dumps({"session": sid, "rank": rank, "key": key, "fingerprint": fp}).encode()
        try:
            socket.send_fds(session.inbox, [info], [raw.fileno()])
        except OSError as err:
            log.warning("session %s: could not hand a link to its worker (%s)", sid[:8], err)
        raw.close()  # the worker holds its own descriptor now
        return None

    def _watch_control(self, s: Session) -> None:
        """The opener's connection: when it closes, the session is over."""
        with contextlib.suppress(OSError):
            s.control.settimeout(None)
            while s.control.recv(4096):
                pass
        try:
            s.proc.wait(timeout=30)  # the worker ends by itself once its links close
        except subprocess.TimeoutExpired:
            with contextlib.suppress(ProcessLookupError):
                os.killpg(s.proc.pid, signal.SIGKILL)

    def _reap(self, s: Session) -> None:
        rc = s.proc.wait()
        report: dict = {}
        with contextlib.suppress(OSError, ValueError):
            report = json.loads((s.workdir / "report.json").read_text())
        ok = rc == 0 and "error" not in report
        self.metrics.sessions.labels(outcome="completed" if ok else "failed").inc()
        self.metrics.seconds.observe(time.monotonic() - s.started)
        cost = report.get("cost") or {}
        self.metrics.bytes.inc(cost.get("bytes", 0) or 0)
        result = report.get("result") or {}
        self.metrics.inferences.inc(result.get("inferences", 0) if isinstance(result, dict) else 0)
        if not ok:
            detail = (report.get("error") or {}).get("message") or _tail(s.workdir / "party.log")
            log.warning("session %s failed (exit %s): %s", s.sid[:8], rc, detail)
        else:
            log.info("session %s ended (%s inference(s))", s.sid[:8], result.get("inferences") if isinstance(result, dict) else 0)
        with self.lock:
            self.sessions.pop(s.sid, None)
            self.metrics.active.set(len(self.sessions))
        for sock in (s.inbox, s.control):
            with contextlib.suppress(OSError):
                sock.close()
        if s.proc.stdin is not None:
            with contextlib.suppress(OSError):
                s.proc.stdin.close()
        shutil.rmtree(s.workdir, ignore_errors=True)


def _tail(path: Path, lines: int = 5) -> str:
    try:
        return " | ".join(path.read_text(errors="replace").splitlines()[-lines:])
    except OSError:
        return ""


def _http_server(service: Service, addr: tuple[str, int]) -> ThreadingHTTPServer:
    class Handler(BaseHTTPRequestHandler):
        def do_GET(self):  # noqa: N802 - http.server's name
            if self.path == "/metrics":
                body, ctype, code = generate_latest(service.metrics.registry), "text/plain; version=0.0.4", 200
            elif self.path in ("/healthz", "/readyz"):
                draining = service.draining.is_set()
                with service.lock:
                    n = len(service.sessions)
                ready = not draining and (self.path == "/healthz" or n < service.cfg.max_sessions)
                body = json.dumps({"role": service.cfg.role, "status": "draining" if draining else "ok",
                                   "sessions": n, "max_sessions": service.cfg.max_sessions}).encode()  # fmt: skip
                ctype, code = "application/json", 200 if ready else 503
            else:
                body, ctype, code = b"not found\n", "text/plain", 404
            self.send_response(code)
            self.send_header("Content-Type", ctype)
            self.send_header("Content-Length", str(len(body)))
            self.end_headers()
            self.wfile.write(body)

        def log_message(self, *args):  # probes every few seconds: keep the log quiet
            pass

    return ThreadingHTTPServer(addr, Handler)


def run(cfg: ServiceConfig, *, ready_out=None, parent_pipe: bool = False) -> int:
    """Run the service until SIGTERM/SIGINT (or, with ``parent_pipe``, until standard input closes)."""
    service = Service(cfg)
    ready = service.start()
    out = ready_out or sys.stdout
    out.write(json.dumps(ready) + "\n")
    out.flush()
    done = threading.Event()

    def on_signal(signum, frame):
        done.set()

    signal.signal(signal.SIGTERM, on_signal)
    signal.signal(signal.SIGINT, on_signal)
    if parent_pipe:  # the embedded default: die with whoever started us
        def watch() -> None:
            with contextlib.suppress(OSError):
                while os.read(0, 4096):
                    pass
            service.stop()
            os._exit(0)

        threading.Thread(target=watch, daemon=True, name="smt-service-parent").start()
    while not done.wait(0.5):
        pass
    service.drain()
    return 0


def new_session_id() -> str:
    return secrets.token_hex(16)


def build_parser(parser=None):
    import argparse

    p = parser or argparse.ArgumentParser(prog="smt serve", description=__doc__,
                                          formatter_class=argparse.RawDescriptionHelpFormatter)  # fmt: skip
    p.add_argument("role", choices=sorted(SERVICE_ROLES), nargs="?", help="the role this service plays")
    p.add_argument("--identity-dir", type=Path, help="ROLE.key, ROLE.crt, and the certificates it trusts: "
                   "data-owner*.crt (the data owners it serves), dealer*.crt or model-owner*.crt (its peer)")
    p.add_argument("--listen", default="127.0.0.1:7441", help="HOST:PORT of the TLS port (default %(default)s)")
    p.add_argument("--metrics-listen", default=None, help="HOST:PORT for /healthz, /readyz and /metrics")
    p.add_argument("--model", help="model-owner: a model name (minilm) or a save_pretrained folder")
    p.add_argument("--model-name", help="the name data owners ask for (default: --model)")
    p.add_argument("--max-sessions", type=int, default=4, help="concurrent model sessions (default %(default)s)")
    p.add_argument("--drain-timeout", type=float, default=300.0, help="seconds to finish sessions on SIGTERM")
    p.add_argument("--session-lifetime", type=float, default=0.0, help="renew a model session after this many "
                   "seconds (0: the data owner decides)")
    p.add_argument("--session-inferences", type=int, default=0, help="renew after this many inferences (0: no limit)")
    p.add_argument("--threads", type=int, default=1, help="torch threads per session")
    p.add_argument("--device", default="cpu")
    p.add_argument("--from-launcher", action="store_true", help=argparse.SUPPRESS)
    return p


def config_from_args(args) -> ServiceConfig:
    from mpc.identity import load

    if not args.role or not args.identity_dir:
        raise ConfigurationError("give the role (model-owner or dealer) and --identity-dir")
    return ServiceConfig(
        role=args.role, identity=load(args.role, args.identity_dir), listen=parse_address(args.listen, "--listen"),
        metrics_listen=parse_address(args.metrics_listen, "--metrics-listen") if args.metrics_listen else None,
        model=args.model, model_name=args.model_name, max_sessions=args.max_sessions, drain_timeout=args.drain_timeout,
        session_lifetime=args.session_lifetime, session_inferences=args.session_inferences, threads=args.threads,
        device=args.device)  # fmt: skip


def main(argv: list[str] | None = None) -> int:
    logging.basicConfig(level=logging.INFO, format="%(asctime)s service %(levelname)s %(message)s")
    args = build_parser().parse_args(argv)
    if args.from_launcher:  # the embedded default: configuration and key down the pipe, die with the parent
        from mpc.party import _read_exact  # the launcher's framing (mpc/launcher.py _send_params)

        params = json.loads(_read_exact(0, int.from_bytes(_read_exact(0, 8), "big")))
        c = dict(params["config"])
        c["listen"] = tuple(c["listen"])
        c["metrics_listen"] = tuple(c["metrics_listen"]) if c.get("metrics_listen") else None
        cfg = ServiceConfig(identity=Identity.from_params(params["identity"]), **c)
        return run(cfg, parent_pipe=True)
    try:
        cfg = config_from_args(args)
    except ConfigurationError as err:
        print(f"smt serve: {err}", file=sys.stderr)
        return 2
    return run(cfg)


if __name__ == "__main__":
    sys.exit(main())
