"""Start and stop the local operations stack of ``smt up`` / ``smt down``.

``up``: a Prefect server on loopback (SQLite under the state folder, or PostgreSQL by URL), the
work pools of ``deployments/work-pools/process-<region>.json``, the deployments of
``deployments/prefect.yaml``, one worker per region pool and the metrics endpoint.  Every process
is started in its own session (so SIGTERM reaches it, not an ignored SIGINT) and recorded in
``<state>/stack.json`` with its pid and start time; ``down`` stops exactly those, by process
group, and nothing else (a recorded pid now used by another process is left alone).
"""

from __future__ import annotations

import json
import os
import signal
import socket
import subprocess
import sys
import time
import urllib.request
from dataclasses import asdict, dataclass, field
from pathlib import Path

import psutil

from mpc.errors import ConfigurationError, SmtError
from tasks.regions import load_rules

ROOT = Path(__file__).resolve().parents[1]
PREFECT_FILE = ROOT / "deployments" / "prefect.yaml"
POOL_TEMPLATES = ROOT / "deployments" / "work-pools"


class StackError(SmtError):
    """The local stack could not be started or stopped; the message names the step."""


@dataclass(kw_only=True)
class Proc:
    name: str
    pid: int
    started: float  # psutil create_time: tells our process from a later one with the same pid
    log: str


@dataclass(kw_only=True)
class Stack:
    state_dir: str
    api_url: str
    ui_url: str
    metrics_url: str
    prefect_home: str
    env: dict[str, str]
    processes: list[Proc] = field(default_factory=list)

    @property
    def file(self) -> Path:
        return Path(self.state_dir) / "stack.json"

    def save(self) -> None:
        self.file.write_text(json.dumps(asdict(self), indent=2), encoding="utf-8")

    @classmethod
    def load(cls, state_dir: Path) -> Stack | None:
        file = state_dir / "stack.json"
        if not file.exists():
            return None
        data = json.loads(file.read_text(encoding="utf-8"))
        data["processes"] = [Proc(**p) for p in data["processes"]]
        return cls(**data)


def free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return int(s.getsockname()[1])


def _bin(name: str) -> str:
    return str(Path(sys.executable).with_name(name))


def _start(stack: Stack, name: str, cmd: list[str]) -> Proc:
    log = Path(stack.state_dir) / "logs" / f"{name}.log"
    log.parent.mkdir(parents=True, exist_ok=True)
    with open(log, "ab") as out:
        popen = subprocess.Popen(cmd, cwd=ROOT, env={**os.environ, **stack.env}, stdout=out,
                                 stderr=subprocess.STDOUT, stdin=subprocess.DEVNULL,
                                 start_new_session=True)
    proc = Proc(name=name, pid=popen.pid, started=psutil.Process(popen.pid).create_time(),
                log=str(log))
    stack.processes.append(proc)
    stack.save()  # recorded at once: `smt down` can stop it even if `up` fails later
    return proc


def _tail(path: str, n: int = 20) -> str:
    try:
        return "\n".join(Path(path).read_text(errors="replace").splitlines()[-n:])
    except OSError:
        return "(no log)"


def _wait_healthy(stack: Stack, proc: Proc, timeout: float) -> None:
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        if not psutil.pid_exists(proc.pid) or psutil.Process(proc.pid).status() == "zombie":
            raise StackError(f"the Prefect server exited; its log ends:\n{_tail(proc.log)}")
        try:
            with urllib.request.urlopen(f"{stack.api_url}/health", timeout=2) as r:
                if r.status == 200:
                    return
        except OSError:
            pass
        time.sleep(0.5)
    raise StackError(f"the Prefect server did not answer {stack.api_url}/health within "
                     f"{timeout:g} s; its log ends:\n{_tail(proc.log)}")


def _run(stack: Stack, step: str, cmd: list[str], timeout: float = 300) -> None:
    done = subprocess.run(cmd, cwd=ROOT, env={**os.environ, **stack.env}, capture_output=True,
                          text=True, timeout=timeout)
    if done.returncode != 0:
        raise StackError(f"{step} failed (exit {done.returncode}): "
                         f"{(done.stderr or done.stdout)[-2000:]}")


def _client(stack: Stack):
    from prefect.client.orchestration import SyncPrefectClient

    return SyncPrefectClient(stack.api_url)


def create_pools(stack: Stack, pools: dict[str, str]) -> None:
    """One process work pool per region, from its base job template (replaced if it exists)."""
    from prefect.client.schemas.actions import WorkPoolCreate

    with _client(stack) as client:
        for region, pool in pools.items():
            template = json.loads((POOL_TEMPLATES / f"process-{region}.json").read_text())
            client.create_work_pool(WorkPoolCreate(name=pool, type="process",
                                                   base_job_template=template), overwrite=True)


def pause_schedules(stack: Stack) -> int:
    with _client(stack) as client:
        paused = 0
        for dep in client.read_deployments():
            for schedule in dep.schedules:
                client.update_deployment_schedule(dep.id, schedule.id, active=False)
                paused += 1
    return paused


def wait_workers(stack: Stack, pools: list[str], timeout: float) -> None:
    deadline = time.monotonic() + timeout
    with _client(stack) as client:
        while True:
            missing = [p for p in pools if not any(
                str(getattr(w.status, "value", w.status)) == "ONLINE"
                for w in client.read_workers_for_work_pool(p))]
            if not missing:
                return
            if time.monotonic() > deadline:
                raise StackError(f"no worker came online for {missing} within {timeout:g} s; "
                                 f"see the worker logs under {stack.state_dir}/logs")
            time.sleep(0.5)


def up(state_dir: Path, *, port: int = 4200, metrics_port: int = 9464,
       database_url: str | None = None, schedules: bool = True,
       regions_file: str | None = None, timeout: float = 120) -> Stack:
    state_dir = state_dir.resolve()
    existing = Stack.load(state_dir)
    if existing and any(_alive(p) for p in existing.processes):
        raise StackError(f"a stack recorded in {existing.file} is still running; "
                         "run `smt down` first")
    rules = load_rules(regions_file)
    pools = {r: cfg.work_pool for r, cfg in rules.regions.items()}
    missing = [r for r in pools if not (POOL_TEMPLATES / f"process-{r}.json").exists()]
    if missing:
        raise ConfigurationError(f"no process work-pool template for {missing} in "
                                 f"{POOL_TEMPLATES}")
    state_dir.mkdir(parents=True, exist_ok=True)
    port = port or free_port()
    metrics_port = metrics_port or free_port()
    home = state_dir / "prefect-home"
    metrics_dir = state_dir / "metrics"
    metrics_dir.mkdir(exist_ok=True)
    env = {
        "PREFECT_HOME": str(home),
        "PREFECT_API_URL": f"http://127.0.0.1:{port}/api",
        "PREFECT_SERVER_ANALYTICS_ENABLED": "false",
        "PREFECT_WORKER_QUERY_SECONDS": os.environ.get("PREFECT_WORKER_QUERY_SECONDS", "10"),
        "SMT_METRICS_DIR": str(metrics_dir),
        "SMT_METRICS_TEXTFILE": str(metrics_dir / "inference.prom"),
        "SMT_ROUTING_TABLE_URL": os.environ.get("SMT_ROUTING_TABLE_URL",
                                                str(state_dir / "routing.json")),
    }
    if database_url:
        env["PREFECT_API_DATABASE_CONNECTION_URL"] = database_url
    if regions_file:
        env["SMT_REGIONS_FILE"] = regions_file
    stack = Stack(state_dir=str(state_dir), api_url=env["PREFECT_API_URL"],
                  ui_url=f"http://127.0.0.1:{port}", prefect_home=str(home), env=env,
                  metrics_url=f"http://127.0.0.1:{metrics_port}/metrics")
    stack.save()
    started = False
    try:
        server = _start(stack, "prefect-server", [_bin("prefect"), "server", "start", "--host",
                                                  "127.0.0.1", "--port", str(port)])
        _wait_healthy(stack, server, timeout)
        create_pools(stack, pools)
        _run(stack, "prefect deploy", [_bin("prefect"), "--no-prompt", "deploy", "--all",
                                       "--prefect-file", str(PREFECT_FILE)])
        if not schedules:
            pause_schedules(stack)
        for region, pool in pools.items():
            _start(stack, f"worker-{region}", [_bin("prefect"), "worker", "start", "--pool",
                                               pool, "--name", f"{pool}-{socket.gethostname()}"])
        _start(stack, "metrics", [sys.executable, "-m", "flows.metrics_endpoint", "--port",
                                  str(metrics_port), "--dir", str(metrics_dir)])
        wait_workers(stack, list(pools.values()), timeout)
        started = True
    finally:
        if not started:  # leave nothing running behind a failed start
            down(state_dir)
    return stack


def _alive(p: Proc) -> bool:
    try:
        proc = psutil.Process(p.pid)
        return abs(proc.create_time() - p.started) < 1e-3 and proc.status() != "zombie"
    except psutil.NoSuchProcess:
        return False


def stop(p: Proc, grace: float = 20) -> str:
    """SIGTERM the process group we started, SIGKILL after ``grace`` s; 'stopped', 'killed'
    or 'gone' (not running, or its pid now belongs to another process)."""
    if not _alive(p):
        return "gone"
    try:
        os.killpg(p.pid, signal.SIGTERM)
    except ProcessLookupError:
        return "gone"
    deadline = time.monotonic() + grace
    while time.monotonic() < deadline:
        if not _alive(p):
            return "stopped"
        time.sleep(0.2)
    try:
        os.killpg(p.pid, signal.SIGKILL)
    except ProcessLookupError:
        return "stopped"
    deadline = time.monotonic() + 10  # SIGKILL is asynchronous: wait until it has taken effect
    while time.monotonic() < deadline and _alive(p):
        time.sleep(0.1)
    return "killed"


def down(state_dir: Path) -> dict[str, str]:
    """Stop every process the recorded stack started (workers first, the server last)."""
    stack = Stack.load(state_dir.resolve())
    if stack is None:
        return {}
    result = {p.name: stop(p) for p in reversed(stack.processes)}
    stack.file.unlink()
    return result
