"""Nothing of a session outlives it: parties die with their launcher, secrets never sit in files
or on command lines, stale session folders are swept (mpc/launcher.py, mpc/party.py)."""

from __future__ import annotations

import os
import signal
import subprocess
import sys
import textwrap
import time
from pathlib import Path

from mpc.launcher import session_dir, sweep_stale_sessions

ROOT = Path(__file__).resolve().parents[2]
MARKER = "Zebra-diagnosis-7731 confidential"


def _parties_under(folder: Path) -> dict[int, bytes]:
    found = {}
    for p in Path("/proc").iterdir():
        if p.name.isdigit():
            try:
                cmd = (p / "cmdline").read_bytes()
            except OSError:
                continue
            if b"mpc.party" in cmd and str(folder).encode() in cmd:
                found[int(p.name)] = cmd
    return found


def test_sigkill_of_the_launcher_leaves_no_party_and_no_secret_file(tmp_path):
    script = textwrap.dedent(f"""
        from mpc.launcher import launch
        launch("mpc.probe_jobs:sleep_job", {{"data-owner": {{"texts": [{MARKER!r}], "seconds": 120}}}}, timeout=300)
    """)
    env = {**os.environ, "TMPDIR": str(tmp_path)}
    launcher = subprocess.Popen([sys.executable, "-c", script], cwd=ROOT, env=env)
    deadline = time.monotonic() + 90
    while len(_parties_under(tmp_path)) < 3 and time.monotonic() < deadline:
        time.sleep(0.2)
    parties = _parties_under(tmp_path)
    assert len(parties) == 3, "the session did not start"
    time.sleep(3)  # parties have read their parameters and connected
    for cmd in parties.values():
        assert MARKER.encode() not in cmd  # no secret on a command line
    secrets_on_disk = [p for p in tmp_path.rglob("*") if p.is_file() and MARKER.encode() in p.read_bytes()]
    assert not secrets_on_disk  # parameters travel down pipes, not files
    launcher.send_signal(signal.SIGKILL)
    launcher.wait()
    deadline = time.monotonic() + 10
    while _parties_under(tmp_path) and time.monotonic() < deadline:
        time.sleep(0.1)
    assert not _parties_under(tmp_path), "party processes outlived their launcher"
    leftovers = [p for p in tmp_path.rglob("*") if p.is_file()]
    assert not leftovers, f"files left behind: {leftovers}"


def test_stale_session_folders_are_swept(tmp_path, monkeypatch):
    import tempfile

    monkeypatch.setattr(tempfile, "tempdir", str(tmp_path))
    dead = subprocess.Popen([sys.executable, "-c", "pass"])
    dead.wait()
    stale = tmp_path / "smt-session-stale"
    stale.mkdir()
    (stale / "owner.pid").write_text(str(dead.pid))
    (stale / "data-owner-0.report.json").write_text("{}")
    assert sweep_stale_sessions(tmp_path) == [stale] and not stale.exists()
    stale.mkdir()
    (stale / "owner.pid").write_text(str(dead.pid))
    live = session_dir()  # sweeps too; ours stays: this process is alive
    assert live.stat().st_mode & 0o777 == 0o700
    assert not stale.exists() and live.exists()
    assert sweep_stale_sessions(tmp_path) == [] and live.exists()
    elsewhere = tmp_path / "smt-session-other-container"  # a dead pid of another pid namespace
    elsewhere.mkdir()
    (elsewhere / "owner.pid").write_text(f"{dead.pid} pid:[1]")
    assert sweep_stale_sessions(tmp_path) == [] and elsewhere.exists()


def test_a_stray_wiretap_setting_is_refused_outside_the_tests(tmp_path):
    """SMT_WIRETAP records every received byte (revealed outputs included): a party refuses it
    unless the test suite also sets SMT_TEST_HOOKS=1."""
    import pytest

    from mpc import errors
    from mpc.launcher import launch

    with pytest.raises(errors.ConfigurationError, match="SMT_WIRETAP is set"):
        launch("mpc.probe_jobs:sleep_job", {"data-owner": {"seconds": 0}}, timeout=120,
               env_by_role={"data-owner": {"SMT_WIRETAP": str(tmp_path / "tap.bin")}})  # fmt: skip
    assert not (tmp_path / "tap.bin").exists()
