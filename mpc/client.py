"""The data owner's side of the party services: persistent model sessions, and the embedded
default that starts the services on loopback.

``ModelSession`` is one persistent session (mpc/model_session.py) between this data owner and
one model-owner service and one dealer service: a data-owner party process of ours (it holds the
texts; the services never see them) that opens the session at both services, shares nothing
itself at set-up, and then runs one inference per ``infer`` call over the same links, weights
and weight masks.  It renews itself after ``lifetime_seconds`` or ``max_inferences``, or when a
service asks to (draining, its own limits), and transparently opens a new session when a
service ended the old one while it was idle.

``infer`` is the entry point of the flow and the CLI: a process-wide pool of model sessions per
(services, model), so that the shards of a run pay start-up and weight sharing once.  With no
services configured, ``local_services`` starts a model-owner and a dealer service on loopback
(throwaway identities, same code path, links encrypted) that live as long as this process.
"""

from __future__ import annotations

import atexit
import contextlib
import json
import os
import shutil
import socket
import subprocess
import sys
import tempfile
import threading
import time
from dataclasses import dataclass
from pathlib import Path

import numpy as np

from mpc import errors
from mpc.api import InferenceResult
from mpc.identity import Identity
from mpc.model_session import recv_frame, send_frame


@dataclass(frozen=True, kw_only=True)
class Services:
    """The region's party services as this data owner reaches them, and its own identity
    (key; ``peers``: the pinned certificates of the model-owner and dealer services)."""

    model_owner: tuple[str, int]
    dealer: tuple[str, int]
    identity: Identity

    @property
    def key(self) -> tuple:
        return (tuple(self.model_owner), tuple(self.dealer), self.identity.fingerprint)

    def describe(self) -> str:
        return f"model-owner {self.model_owner[0]}:{self.model_owner[1]}, dealer {self.dealer[0]}:{self.dealer[1]}"

    @classmethod
    def from_identity_dir(cls, *, model_owner: str, dealer: str, identity_dir: str | Path) -> Services:
        from mpc.identity import load
        from mpc.service import parse_address

        return cls(model_owner=parse_address(model_owner, "model-owner endpoint"),
                   dealer=parse_address(dealer, "dealer endpoint"), identity=load("data-owner", Path(identity_dir)))  # fmt: skip


class ModelSession:
    def __init__(self, services: Services, *, model: str = "minilm", connect_timeout: float = 60.0,
                 setup_timeout: float = 900.0, lifetime_seconds: float = 3600.0, max_inferences: int = 0,
                 threads: int = 1, device: str = "cpu"):  # fmt: skip
        self.services = services
        self.model = model
        self.connect_timeout = connect_timeout
        self.setup_timeout = setup_timeout
        self.lifetime_seconds = lifetime_seconds
        self.max_inferences = max_inferences
        self.threads = threads
        self.device = device
        self.proc: subprocess.Popen | None = None
        self.chan: socket.socket | None = None
        self.workdir: Path | None = None
        self.opened_at = 0.0
        self.inferences = 0
        self.sessions_opened = 0
        self.kind = ""
        self.setup_seconds = 0.0
        self.lock = threading.Lock()

    # -- lifecycle -----------------------------------------------------------------------
    @property
    def is_open(self) -> bool:
        return self.proc is not None and self.proc.poll() is None

    def _expired(self) -> bool:
        return bool((self.lifetime_seconds and time.monotonic() - self.opened_at > self.lifetime_seconds)
                    or (self.max_inferences and self.inferences >= self.max_inferences))  # fmt: skip

    def open(self) -> None:
        from mpc.launcher import _MALLOC, _send_params, session_dir
        from mpc.service import new_session_id

        self.close()
        self.workdir = session_dir()
        ours, theirs = socket.socketpair(socket.AF_UNIX, socket.SOCK_STREAM)
        sid = new_session_id()
        params = {
            "identity": self.services.identity.to_params(),
            "control_fd": theirs.fileno(),
            "model_name": self.model,
            "mesh": {"session": sid, "endpoints": {"1": list(self.services.model_owner), "2": list(self.services.dealer)},
                     "inbox_fd": None, "open": {"model": self.model}},
        }  # fmt: skip
        cmd = [sys.executable, "-m", "mpc.party", "--role", "data-owner", "--rank", "0", "--world-size", "2",
               "--job", "mpc.model_session:model_session_job", "--from-launcher",
               "--report", str(self.workdir / "report.json"), "--device", self.device, "--threads", str(self.threads),
               "--connect-timeout", str(self.connect_timeout)]  # fmt: skip
        env = {**_MALLOC, **os.environ, "OMP_NUM_THREADS": str(self.threads), "SMT_SESSION_DIR": str(self.workdir)}
        with open(self.workdir / "party.log", "wb") as log:
            self.proc = subprocess.Popen(cmd, stdin=subprocess.PIPE, stdout=log, stderr=subprocess.STDOUT, env=env,
                                         pass_fds=(theirs.fileno(),), start_new_session=True)  # fmt: skip
        theirs.close()
        _send_params(self.proc, params)
        self.chan = ours
        t0 = time.monotonic()
        header, _ = self._receive(self.connect_timeout + self.setup_timeout, "setting up the model session")
        self.kind = header["kind"]
        self.setup_seconds = time.monotonic() - t0
        self.opened_at = time.monotonic()
        self.inferences = 0
        self.sessions_opened += 1

    def close(self) -> None:
        if self.chan is not None:
            with contextlib.suppress(OSError):
                send_frame(self.chan, {"op": "close"})
        proc, self.proc = self.proc, None
        if proc is not None:
            try:
                proc.wait(timeout=30)
            except subprocess.TimeoutExpired:
                with contextlib.suppress(ProcessLookupError):
                    os.killpg(proc.pid, 9)
                proc.wait()
            if proc.stdin is not None:
                with contextlib.suppress(OSError):
                    proc.stdin.close()
        if self.chan is not None:
            with contextlib.suppress(OSError):
                self.chan.close()
            self.chan = None
        if self.workdir is not None:
            shutil.rmtree(self.workdir, ignore_errors=True)
            self.workdir = None

    # -- requests ------------------------------------------------------------------------
    def _failure(self, what: str) -> errors.SmtError:
        """The data-owner party stopped: its report names the endpoint or party that failed."""
        from mpc.launcher import ERROR_TYPES

        proc = self.proc
        if proc is not None:
            with contextlib.suppress(subprocess.TimeoutExpired):
                proc.wait(timeout=10)
        report: dict = {}
        tail = ""
        if self.workdir is not None:
            with contextlib.suppress(OSError, ValueError):
                report = json.loads((self.workdir / "report.json").read_text())
            with contextlib.suppress(OSError):
                tail = "\n".join((self.workdir / "party.log").read_text(errors="replace").splitlines()[-15:])
        self.close()
        detail = report.get("error") or {}
        cls = ERROR_TYPES.get(detail.get("type", ""), errors.PartyFailure)
        message = f"data owner's session with {self.services.describe()} failed while {what}: " + (
            detail.get("message") or f"the data-owner party stopped; last log lines:\n{tail}")
        if cls is errors.PartyFailure:
            return errors.PartyFailure(message, party="data-owner (rank 0)", returncode=proc.returncode if proc else None,
                                       log_tail=tail)  # fmt: skip
        return cls(message)  # type: ignore[call-arg]

    def _receive(self, timeout: float, what: str) -> tuple[dict, bytes]:
        assert self.chan is not None
        self.chan.settimeout(timeout)
        try:
            got = recv_frame(self.chan)
        except TimeoutError:
            got = None
            if self.proc is not None:
                with contextlib.suppress(ProcessLookupError):
                    os.killpg(self.proc.pid, 9)
            failure = errors.PartyFailure(f"no answer from the data-owner party after {timeout:.0f} s while {what} "
                                          f"({self.services.describe()}); raise the timeout or check the services",
                                          party="data-owner (rank 0)", returncode=None, log_tail="")  # fmt: skip
            self.close()
            raise failure from None
        except OSError:
            got = None
        if got is None:
            raise self._failure(what)
        header, payload = got
        if not header.get("ok"):
            detail = header.get("error") or {}
            if detail.get("type") == "InputError":
                raise errors.InputError(detail.get("message", "bad input"))
            if detail.get("type") == "SessionEnded":
                self.close()
                raise _SessionEnded()
            raise self._failure(what)
        return header, payload

    def infer(self, texts: list[str] | None = None, *, max_length: int = 128, on_overlong: str = "truncate",
              pad_to: str = "longest", return_hidden: bool = False, timeout: float = 1800.0,
              token_ids: list[list[int]] | None = None) -> InferenceResult:  # fmt: skip
        request = {"op": "infer", "texts": texts, "token_ids": token_ids, "max_length": max_length,
                   "on_overlong": on_overlong, "pad_to": pad_to, "return_hidden": return_hidden}  # fmt: skip
        with self.lock:
            setup = None
            for attempt in range(2):
                if not self.is_open or self._expired():
                    self.open()
                    setup = round(self.setup_seconds, 3)
                assert self.chan is not None
                try:
                    send_frame(self.chan, request)
                    header, payload = self._receive(timeout, "running an inference")
                except _SessionEnded:
                    if attempt == 0:
                        continue  # ended while idle: nothing was computed; ask a new session
                    raise errors.TransportError(f"the services ({self.services.describe()}) ended two sessions "
                                                "in a row before an inference could run") from None  # fmt: skip
                except OSError:
                    raise self._failure("sending an inference request") from None
                break
            self.inferences += 1
            if header.get("renew"):
                self.close()  # the parties leave after this answer; the next call opens anew
            out = np.frombuffer(payload, dtype=np.float64)
            n = int(np.prod(header["shape"]))
            outputs = out[:n].reshape(header["shape"]).astype(np.float32)
            hidden = out[n:].reshape(header["hidden_shape"]) if header.get("hidden_shape") else None
            cost = dict(header.get("cost", {}))
            if setup is not None:  # this call opened the model session and paid its set-up
                cost["session_setup_seconds"] = setup
            name = Path(self.model).name if Path(self.model).is_dir() else self.model
            return InferenceResult(outputs=outputs, kind=header["kind"], model_name=name, cost=cost, hidden=hidden)


class _SessionEnded(Exception):
    pass


# ------------------------------------------------------------------------------------------
# the embedded default: local services on loopback


@dataclass
class LocalServices:
    services: Services
    procs: list[subprocess.Popen]
    metrics: dict[str, tuple[str, int]]

    def stop(self) -> None:
        for p in self.procs:
            if p.stdin is not None:
                with contextlib.suppress(OSError):
                    p.stdin.close()  # a service started by us exits when its pipe closes
        for p in self.procs:
            try:
                p.wait(timeout=15)
            except subprocess.TimeoutExpired:
                p.kill()
                p.wait()


def start_service(role: str, identity: Identity, *, model: str | None = None, max_sessions: int = 4,
                  host: str = "127.0.0.1", extra: dict | None = None, log_path: Path | None = None,
                  timeout: float = 120.0, prefix: list[str] | None = None) -> tuple[subprocess.Popen, dict]:  # fmt: skip
    """Start ``smt serve ROLE`` as a child that dies with us; returns (process, its ready line)."""
    from mpc.launcher import _send_params

    cfg = {"role": role, "listen": [host, 0], "metrics_listen": [host, 0], "model": model,
           "max_sessions": max_sessions, **(extra or {})}  # fmt: skip
    log = open(log_path or os.devnull, "ab")  # noqa: SIM115 - handed to the child
    proc = subprocess.Popen([*(prefix or []), sys.executable, "-m", "mpc.service", "--from-launcher"],
                            stdin=subprocess.PIPE, stdout=subprocess.PIPE, stderr=log, start_new_session=True)  # fmt: skip
    log.close()
    _send_params(proc, {"config": cfg, "identity": identity.to_params()})
    assert proc.stdout is not None
    deadline = time.monotonic() + timeout
    line = b""
    while time.monotonic() < deadline and proc.poll() is None:
        import select

        ready, _, _ = select.select([proc.stdout], [], [], 0.2)
        if ready:
            line = proc.stdout.readline()
            break
    if not line:
        proc.kill()
        raise errors.ConfigurationError(f"the local {role} service did not start (see {log_path or 'its log'})")
    return proc, json.loads(line)


def start_local_services(model: str = "minilm", *, max_sessions: int = 4, threads: int = 1) -> LocalServices:
    from mpc import identity

    ids = identity.throwaway(["data-owner", "model-owner", "dealer"])
    logdir = Path(tempfile.gettempdir())
    procs, ready = [], {}
    try:
        for role in ("dealer", "model-owner"):
            proc, info = start_service(role, ids[role], model=model if role == "model-owner" else None,
                                       max_sessions=max_sessions, extra={"threads": threads},
                                       log_path=logdir / f"smt-local-{role}-{os.getpid()}.log")  # fmt: skip
            procs.append(proc)
            ready[role] = info
    except BaseException:
        LocalServices(services=None, procs=procs, metrics={}).stop()  # type: ignore[arg-type]
        raise
    services = Services(model_owner=tuple(ready["model-owner"]["listen"]), dealer=tuple(ready["dealer"]["listen"]),
                        identity=ids["data-owner"])  # type: ignore[arg-type]  # fmt: skip
    return LocalServices(services=services, procs=procs, metrics={r: tuple(i["metrics"]) for r, i in ready.items()})


_LOCAL: dict[tuple, LocalServices] = {}
_POOL: dict[tuple, list[ModelSession]] = {}
_POOL_LOCK = threading.Lock()


def local_services(model: str = "minilm", *, threads: int = 1) -> Services:
    """The embedded default: this process's loopback services for ``model`` (started once)."""
    key = (model, threads)
    with _POOL_LOCK:
        local = _LOCAL.get(key)
        if local is None or any(p.poll() is not None for p in local.procs):
            if local is not None:
                local.stop()
            local = _LOCAL[key] = start_local_services(model, threads=threads)
        return local.services


def session_for(services: Services, *, model: str, **options) -> ModelSession:
    """An idle pooled model session for (services, model), or a new one (opened lazily)."""
    key = (services.key, model, tuple(sorted(options.items())))
    with _POOL_LOCK:
        pool = _POOL.setdefault(key, [])
        for s in pool:
            if s.lock.acquire(blocking=False):
                s.lock.release()
                return s
        s = ModelSession(services, model=model, **options)
        pool.append(s)
        return s


def infer(texts: list[str], *, model: str = "minilm", services: Services | None = None, max_length: int = 128,
          timeout: float = 1800.0, threads: int = 1, lifetime_seconds: float = 3600.0,
          max_inferences: int = 0) -> InferenceResult:  # fmt: skip
    """Embed or classify ``texts`` under MPC against ``services`` (default: local ones)."""
    services = services or local_services(model, threads=threads)
    session = session_for(services, model=model, threads=threads, lifetime_seconds=lifetime_seconds,
                          max_inferences=max_inferences)  # fmt: skip
    return session.infer(texts, max_length=max_length, timeout=timeout)


def close_all() -> None:
    with _POOL_LOCK:
        sessions = [s for pool in _POOL.values() for s in pool]
        _POOL.clear()
        local = list(_LOCAL.values())
        _LOCAL.clear()
    for s in sessions:
        with contextlib.suppress(Exception):
            s.close()
    for loc in local:
        loc.stop()


atexit.register(close_all)
