"""Start the parties of one MPC session as subprocesses on loopback and watch them.

The embedded default: every party (and the dealer) is a fresh ``python -m mpc.party`` process
in its own process group, rendezvousing on a free loopback port over mutually authenticated
TLS with throwaway identities made for this session (mpc/identity.py).  The launcher watches
every exit code, enforces a timeout, stops the remaining parties as soon as one fails, and
raises an error naming the failed party with its last log lines.  Nothing is left running
afterwards.

Secrets never sit in files or on command lines: each party's parameters (its texts or its model
path, and its private key) go down a pipe that the launcher keeps open for the whole session; a
party whose pipe closes (the launcher died, even by SIGKILL) deletes the session folder and exits
at once.  Session folders (``smt-session-*``, mode 0700) name their owner's pid; every launch
sweeps those whose owner is gone.
"""

from __future__ import annotations

import contextlib
import json
import os
import shutil
import signal
import socket
import subprocess
import sys
import tempfile
import time
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from mpc import errors

ERROR_TYPES = {
    cls.__name__: cls
    for cls in (errors.ConfigurationError, errors.InputError, errors.ProtocolError, errors.TransportError,
                errors.IdentityError, errors.DealerRequestError, errors.InsecureRandomness, errors.ServiceRefused)
}  # fmt: skip
_OWNER = "owner.pid"


# glibc returns every freed block over its mmap threshold to the kernel, so each of the many
# multi-megabyte temporaries of a session costs fresh page faults (measured: limb splitting of
# a 768 x 2304 share 2.5x slower).  Keep blocks up to 32 MiB in the heap instead.
_MALLOC = {"MALLOC_MMAP_THRESHOLD_": str(32 << 20), "MALLOC_TRIM_THRESHOLD_": str(1 << 30)}


def free_port() -> int:
    with socket.socket(socket.AF_INET, socket.SOCK_STREAM) as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


def _pid_namespace() -> str:
    try:
        return os.readlink("/proc/self/ns/pid")
    except OSError:
        return "unknown"


def _owner_stamp() -> str:
    """``PID PIDNS``: a pid means something only in its pid namespace (containers sharing /tmp)."""
    return f"{os.getpid()} {_pid_namespace()}"


def _alive(pid: int) -> bool:
    try:
        os.kill(pid, 0)
    except ProcessLookupError:
        return False
    except PermissionError:
        return True
    return True


def sweep_stale_sessions(root: Path | None = None, pattern: str = "smt-session-*") -> list[Path]:
    """Delete ``smt-session-*`` folders (or ``pattern``: a service's ``smt-service-*``) whose
    owning process is gone; returns what was removed."""
    removed = []
    for d in Path(root or tempfile.gettempdir()).glob(pattern):
        try:
            pid_text, _, ns = (d / _OWNER).read_text().partition(" ")
            pid = int(pid_text)
            if ns and ns != _pid_namespace():
                continue  # another pid namespace's session: its owner is not ours to judge
        except (OSError, ValueError):
            try:  # no owner file: only when clearly abandoned
                if time.time() - d.stat().st_mtime < 86400:
                    continue
            except OSError:
                continue
            pid = -1
        if pid > 0 and _alive(pid):
            continue
        shutil.rmtree(d, ignore_errors=True)
        removed.append(d)
    return removed


def session_dir(prefix: str = "smt-session-") -> Path:
    """A new private (0700) session folder that names this process as its owner."""
    sweep_stale_sessions(pattern=prefix + "*")
    d = Path(tempfile.mkdtemp(prefix=prefix))
    (d / _OWNER).write_text(_owner_stamp())
    return d


def roles_for(parties: int) -> list[tuple[str, int]]:
    if parties not in (2, 3):
        raise errors.InputError(f"parties must be 2 or 3 (got {parties})")
    roles = [("data-owner", 0), ("model-owner", 1)]
    roles += [("helper", r) for r in range(2, parties)]
    return roles + [("dealer", parties)]


@dataclass
class PartyRun:
    role: str
    rank: int
    proc: subprocess.Popen
    log_path: Path
    report_path: Path

    @property
    def name(self) -> str:
        return f"{self.role} (rank {self.rank})"

    def tail(self, lines: int = 20) -> str:
        try:
            text = self.log_path.read_text(errors="replace")
        except OSError:
            return ""
        return "\n".join(text.splitlines()[-lines:])


@dataclass
class SessionOutput:
    reports: dict[str, dict[str, Any]]  # by role
    seconds: float
    workdir: Path

    @property
    def result(self) -> Any:
        return self.reports["data-owner"].get("result")


def _kill(runs: list[PartyRun]) -> None:
    for r in runs:
        if r.proc.poll() is None:
            try:
                os.killpg(r.proc.pid, signal.SIGTERM)
            except ProcessLookupError:
                pass
    deadline = time.monotonic() + 5
    for r in runs:
        try:
            r.proc.wait(timeout=max(0.1, deadline - time.monotonic()))
        except subprocess.TimeoutExpired:
            try:
                os.killpg(r.proc.pid, signal.SIGKILL)
            except ProcessLookupError:
                pass
            r.proc.wait()
    for r in runs:
        if r.proc.stdin is not None:
            with contextlib.suppress(OSError):
                r.proc.stdin.close()


def launch(
    job: str,
    params_by_role: dict[str, dict[str, Any]],
    *,
    parties: int = 2,
    timeout: float = 600.0,
    workdir: Path | None = None,
    device: str = "cpu",
    threads: int = 1,
    env: dict[str, str] | None = None,
    env_by_role: dict[str, dict[str, str]] | None = None,
    prefix_by_role: dict[str, list[str]] | None = None,
    rendezvous_host: str = "127.0.0.1",
    identities: dict | None = None,
) -> SessionOutput:
    """Run ``job`` across the parties; each role gets only its own ``params_by_role`` entry.

    ``prefix_by_role`` wraps a role's command (e.g. ``ip netns exec NS`` to put each party in
    its own network namespace, bench/network.py); ``rendezvous_host`` is then the data owner's
    address as the others reach it.  ``identities`` (role name -> mpc.identity.Identity) replaces
    the throwaway identity of a role: the tests use it to start an impostor.
    """
    from mpc import identity

    roles = roles_for(parties)
    own = workdir is None  # ours to delete
    workdir = Path(workdir) if workdir else session_dir()
    workdir.mkdir(parents=True, exist_ok=True)
    owner = workdir / _OWNER
    deletable = own or (owner.is_file() and owner.read_text() == _owner_stamp())  # a session_dir() of ours
    if not owner.exists():
        owner.write_text(_owner_stamp())
    rendezvous = f"tcp://{rendezvous_host}:{free_port()}"
    ids = identity.throwaway(identity.session_roles(parties))  # per session; keys only travel down pipes
    ids.update(identities or {})
    runs: list[PartyRun] = []
    t0 = time.monotonic()
    try:
        for role, rank in roles:
            own_params = {**params_by_role.get(role, {}),
                          "identity": ids[identity.role_of_rank(rank, parties)].to_params()}  # fmt: skip
            report = workdir / f"{role}-{rank}.report.json"
            report.unlink(missing_ok=True)
            log_path = workdir / f"{role}-{rank}.log"
            cmd = [
                sys.executable, "-m", "mpc.party", "--role", role, "--rank", str(rank),
                "--world-size", str(parties), "--rendezvous", rendezvous, "--job", job,
                "--from-launcher", "--report", str(report), "--device", device,
                "--threads", str(threads),
            ]  # fmt: skip
            cmd = [*(prefix_by_role or {}).get(role, []), *cmd]
            penv = {**_MALLOC, **os.environ, "OMP_NUM_THREADS": str(threads), **(env or {})}
            penv.pop("SMT_SESSION_DIR", None)
            if deletable:  # an orphaned party deletes the whole folder only when it is a session folder
                penv["SMT_SESSION_DIR"] = str(workdir)
            penv.update((env_by_role or {}).get(role, {}))
            with open(log_path, "wb") as log_fh:
                proc = subprocess.Popen(
                    cmd, stdin=subprocess.PIPE, stdout=log_fh, stderr=subprocess.STDOUT, env=penv,
                    start_new_session=True,
                )  # fmt: skip
            runs.append(PartyRun(role, rank, proc, log_path, report))
            _send_params(proc, own_params)
        _watch(runs, timeout, t0)
        reports = {}
        for r in runs:
            reports[r.role if r.role != "helper" else f"helper-{r.rank}"] = json.loads(r.report_path.read_text())
        return SessionOutput(reports=reports, seconds=time.monotonic() - t0, workdir=workdir)
    finally:
        _kill(runs)
        if own:
            shutil.rmtree(workdir, ignore_errors=True)


def _send_params(proc: subprocess.Popen, params: dict) -> None:
    """Framed JSON down the party's stdin, written by a thread (a pipe holds only 64 KiB); the
    pipe then stays open: its closing tells the party that the launcher is gone."""
    import threading

    data = json.dumps(params).encode()
    frame = len(data).to_bytes(8, "big") + data

    def write() -> None:
        try:
            proc.stdin.write(frame)  # type: ignore[union-attr]
            proc.stdin.flush()  # type: ignore[union-attr]
        except (BrokenPipeError, ValueError, OSError):
            pass  # the party died first; _watch reports it

    threading.Thread(target=write, daemon=True, name="smt-params").start()


def _watch(runs: list[PartyRun], timeout: float, t0: float) -> None:
    while True:
        pending = [r for r in runs if r.proc.poll() is None]
        if any(r.proc.returncode not in (None, 0) for r in runs):
            raise _root_cause(runs)
        if not pending:
            missing = [r for r in runs if not r.report_path.exists()]
            if missing:
                raise errors.PartyFailure(
                    f"{missing[0].name} exited without a report; last log lines:\n{missing[0].tail()}",
                    party=missing[0].name, returncode=0, log_tail=missing[0].tail(),
                )  # fmt: skip
            return
        if time.monotonic() - t0 > timeout:
            _kill(runs)
            stuck = pending[0]
            raise errors.PartyFailure(
                f"MPC session timed out after {timeout:.0f} s; {stuck.name} was still running. "
                f"Raise the timeout or check the network between parties. Last log lines:\n{stuck.tail()}",
                party=stuck.name, returncode=None, log_tail=stuck.tail(),
            )  # fmt: skip
        time.sleep(0.05)


def _root_cause(runs: list[PartyRun], grace: float = 3.0) -> errors.SmtError:
    """The error to report once a party failed.  When one party stops, its peers fail soon after
    with "link closed"; wait a moment for them, then report the first failure that is not such a
    consequence (an identity refusal always counts as a cause)."""
    deadline = time.monotonic() + grace
    while time.monotonic() < deadline and any(r.proc.poll() is None for r in runs):
        time.sleep(0.05)
    failed = [(r, _failure(r, r.proc.returncode)) for r in runs if r.proc.poll() not in (None, 0)]
    _kill(runs)
    for _, err in failed:
        if not isinstance(err, errors.TransportError) or isinstance(err, errors.IdentityError):
            return err
    return failed[0][1]


def _failure(r: PartyRun, rc: int) -> errors.SmtError:
    detail = None
    try:
        detail = json.loads(r.report_path.read_text()).get("error")
    except (OSError, ValueError):
        pass
    tail = r.tail()
    if detail and detail.get("type") in ERROR_TYPES:
        err = ERROR_TYPES[detail["type"]](f"{r.name}: {detail['message']}")
        err.party = r.name  # type: ignore[attr-defined,union-attr]
        return err
    how = f"was killed by signal {-rc}" if rc < 0 else f"exited with status {rc}"
    return errors.PartyFailure(
        f"MPC party {r.name} {how}; the session was stopped. Last log lines:\n{tail}",
        party=r.name, returncode=rc, log_tail=tail,
    )  # fmt: skip
