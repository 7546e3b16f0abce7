"""Start the parties of one MPC session as subprocesses on loopback and watch them.

The embedded default: every party (and the dealer) is a fresh ``python -m mpc.party`` process
in its own process group, rendezvousing on a free loopback port.  The launcher watches every
exit code, enforces a timeout, stops the remaining parties as soon as one fails, and raises an
error naming the failed party with its last log lines.  Nothing is left running afterwards.
"""

from __future__ import annotations

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
    "ConfigurationError": errors.ConfigurationError,
    "InputError": errors.InputError,
    "ProtocolError": errors.ProtocolError,
}


# glibc returns every freed block over its mmap threshold to the kernel, so each of the many
# multi-megabyte temporaries of a session costs fresh page faults (measured: limb splitting of
# a 768 x 2304 share 2.5x slower).  Keep blocks up to 32 MiB in the heap instead.
_MALLOC = {"MALLOC_MMAP_THRESHOLD_": str(32 << 20), "MALLOC_TRIM_THRESHOLD_": str(1 << 30)}


def free_port() -> int:
    with socket.socket(socket.AF_INET, socket.SOCK_STREAM) as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


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
) -> SessionOutput:
    """Run ``job`` across the parties; each role gets only its own ``params_by_role`` entry.

    ``prefix_by_role`` wraps a role's command (e.g. ``ip netns exec NS`` to put each party in
    its own network namespace, bench/network.py); ``rendezvous_host`` is then the data owner's
    address as the others reach it.
    """
    roles = roles_for(parties)
    own = workdir is None  # ours to delete: the params files hold each party's secret inputs
    workdir = Path(workdir) if workdir else Path(tempfile.mkdtemp(prefix="smt-session-"))
    workdir.mkdir(parents=True, exist_ok=True)
    rendezvous = f"tcp://{rendezvous_host}:{free_port()}"
    runs: list[PartyRun] = []
    t0 = time.monotonic()
    try:
        for role, rank in roles:
            params_path = workdir / f"{role}-{rank}.params.json"
            params_path.write_text(json.dumps(params_by_role.get(role, {})))
            report = workdir / f"{role}-{rank}.report.json"
            report.unlink(missing_ok=True)
            log_path = workdir / f"{role}-{rank}.log"
            cmd = [
                sys.executable, "-m", "mpc.party", "--role", role, "--rank", str(rank),
                "--world-size", str(parties), "--rendezvous", rendezvous, "--job", job,
                "--params", str(params_path), "--report", str(report), "--device", device,
                "--threads", str(threads),
            ]  # fmt: skip
            cmd = [*(prefix_by_role or {}).get(role, []), *cmd]
            penv = {**_MALLOC, **os.environ, "OMP_NUM_THREADS": str(threads), **(env or {})}
            penv.update((env_by_role or {}).get(role, {}))
            with open(log_path, "wb") as log_fh:
                proc = subprocess.Popen(
                    cmd, stdout=log_fh, stderr=subprocess.STDOUT, env=penv, start_new_session=True
                )
            runs.append(PartyRun(role, rank, proc, log_path, report))
        _watch(runs, timeout, t0)
        reports = {}
        for r in runs:
            reports[r.role if r.role != "helper" else f"helper-{r.rank}"] = json.loads(r.report_path.read_text())
        return SessionOutput(reports=reports, seconds=time.monotonic() - t0, workdir=workdir)
    finally:
        _kill(runs)
        if own:
            shutil.rmtree(workdir, ignore_errors=True)


def _watch(runs: list[PartyRun], timeout: float, t0: float) -> None:
    while True:
        pending = [r for r in runs if r.proc.poll() is None]
        for r in runs:
            rc = r.proc.returncode
            if rc is not None and rc != 0:
                _kill(runs)
                raise _failure(r, rc)
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


def _failure(r: PartyRun, rc: int) -> errors.SmtError:
    detail = None
    try:
        detail = json.loads(r.report_path.read_text()).get("error")
    except (OSError, ValueError):
        pass
    tail = r.tail()
    if detail and detail.get("type") in ERROR_TYPES:
        err = ERROR_TYPES[detail["type"]](f"{r.name}: {detail['message']}")
        err.party = r.name  # type: ignore[attr-defined]
        return err
    how = f"was killed by signal {-rc}" if rc < 0 else f"exited with status {rc}"
    return errors.PartyFailure(
        f"MPC party {r.name} {how}; the session was stopped. Last log lines:\n{tail}",
        party=r.name, returncode=rc, log_tail=tail,
    )  # fmt: skip
