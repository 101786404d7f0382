"""Real ``celery worker`` processes for the broker-path tests.

Each worker is ``python -m celery -A archiver.drivers.tasks worker`` with the settings carried by
environment variables (exactly how a fleet is configured), its output captured to a temporary
file that the fixture prints on teardown (pytest shows it when the test failed), and it is
always killed, with its children, at the end.
"""

from __future__ import annotations

import os
import signal
import subprocess
import sys
import tempfile
import time
from collections.abc import Iterator, Mapping
from pathlib import Path

import psutil  # type: ignore[import-untyped]
import pytest

from tests.support.origin import OriginServer

ROOT = Path(__file__).resolve().parents[2]
FAKE_HOSTS = ("zkres1.myzaker.com", "zkres2.myzaker.com", "static.cnbetacdn.com",
              "cors.zfour.workers.dev", "pause.example.com", "cap.example.com",
              "other.example.com")


# Short backoffs and leases for the fault tests' fleets (``worker_env``'s extra): a fault's
# recovery takes seconds there, the logic is the same.
FAST = {
    "ARCHIVER_FETCH__RETRIES": "0",
    "ARCHIVER_CELERY__RETRY_BACKOFF": "0.2",
    "ARCHIVER_CELERY__RETRY_BACKOFF_MAX": "1",
    "ARCHIVER_CELERY__OUTAGE_BACKOFF_MAX": "1",
    "ARCHIVER_CELERY__CLAIM_TTL": "4",
    "ARCHIVER_CELERY__ANNOUNCE_INTERVAL": "1",
    "ARCHIVER_CELERY__SWEEP_INTERVAL": "2",
    "ARCHIVER_STORE__REQUEST_ATTEMPTS": "1",
}


def worker_env(redis_url: str, s3_endpoint: str, store_url: str, origin: OriginServer,
               **extra: str) -> dict[str, str]:
    """The environment a worker (and an enqueuer) of these tests runs with."""
    env = {k: v for k, v in os.environ.items() if not k.startswith("ARCHIVER_")}
    connect_to = [f"{host}:80:127.0.0.1:{origin.port}" for host in FAKE_HOSTS]
    env.update({
        "AWS_ACCESS_KEY_ID": "testing",
        "AWS_SECRET_ACCESS_KEY": "testing",
        "AWS_DEFAULT_REGION": "us-east-1",
        "ARCHIVER_BROKER_URL": redis_url,
        "ARCHIVER_STORE_URL": store_url,
        "ARCHIVER_S3_ENDPOINT_URL": s3_endpoint,
        "ARCHIVER_FETCH__CONNECT_TO": _json(connect_to),
        "ARCHIVER_FETCH__ALLOW_PRIVATE": '["127.0.0.0/8"]',
        "PYTHONPATH": str(ROOT),
        "PYTHONUNBUFFERED": "1",
    })
    env.update(extra)
    return env


def _json(items: list[str]) -> str:
    return "[" + ",".join(f'"{i}"' for i in items) + "]"


class Worker:
    """One ``celery worker`` process."""

    def __init__(self, name: str, env: Mapping[str, str], *, pool: str = "threads",
                 concurrency: int = 4, queues: str = "media,video", cli: bool = False) -> None:
        self.name = name
        self.log_path = Path(tempfile.mkstemp(prefix=f"celery-{name}-", suffix=".log")[1])
        self._log = self.log_path.open("wb")
        common = ["-n", f"{name}@%h", "-Q", queues, "--pool", pool,
                  "--concurrency", str(concurrency), "--loglevel", "INFO"]
        if cli:  # through ``archiver worker``, which execs the same celery command
            argv = [sys.executable, "-m", "archiver", "worker", *common]
        else:
            argv = [sys.executable, "-m", "celery", "-A", "archiver.drivers.tasks", "worker",
                    *common, "--without-gossip", "--without-mingle", "--without-heartbeat"]
        self.proc = subprocess.Popen(argv, env=dict(env), cwd=ROOT, stdout=self._log,
                                     stderr=subprocess.STDOUT, start_new_session=True)

    def log(self) -> str:
        return self.log_path.read_text(errors="replace")

    def wait_ready(self, timeout: float = 30.0) -> Worker:
        deadline = time.monotonic() + timeout
        while time.monotonic() < deadline:
            if "ready." in self.log():
                return self
            if self.proc.poll() is not None:
                break
            time.sleep(0.1)
        raise RuntimeError(f"worker {self.name} not ready:\n{self.log()}")

    def pids(self) -> list[int]:
        """The worker's own pid and its pool children's."""
        try:
            parent = psutil.Process(self.proc.pid)
            return [self.proc.pid, *(c.pid for c in parent.children(recursive=True))]
        except psutil.NoSuchProcess:
            return []

    def pool_children(self) -> list[int]:
        """The pids of the prefork pool's children (none for the threads and solo pools)."""
        try:
            return [c.pid for c in psutil.Process(self.proc.pid).children()]
        except psutil.NoSuchProcess:
            return []

    def downloading_child(self, port: int) -> int | None:
        """The pool child with a connection open to 127.0.0.1:``port`` (the origin), i.e. the
        one downloading right now; None when no child is."""
        for pid in self.pool_children():
            try:
                conns = psutil.Process(pid).net_connections(kind="tcp")
            except psutil.NoSuchProcess:
                continue
            if any(c.raddr and c.raddr.port == port for c in conns):
                return pid
        return None

    def downloads(self, origin: OriginServer, pids: list[int] | None = None) -> int:
        """How many requests ``origin`` is answering right now for this worker's processes (or
        only ``pids``): its downloads in flight, matched by client port (an idle keep-alive
        connection is not one)."""
        ports: set[int] = set()
        for pid in self.pids() if pids is None else pids:
            try:
                conns = psutil.Process(pid).net_connections(kind="tcp")
            except psutil.NoSuchProcess:
                continue
            ports.update(c.laddr.port for c in conns if c.raddr and c.raddr.port == origin.port)
        return len(ports & set(dict(origin.active)))

    def kill_main(self) -> None:
        """SIGKILL the worker's main process only, as ``kill -9 <pid>`` does; its pool
        children are left to notice on their own."""
        os.kill(self.proc.pid, signal.SIGKILL)
        self.proc.wait(10)

    def kill(self) -> None:
        """SIGKILL the worker and its children: no warm shutdown, nothing acked or restored."""
        for pid in self.pids():
            try:
                os.kill(pid, signal.SIGKILL)
            except ProcessLookupError:
                pass
        self._kill_group()
        self.proc.wait(10)

    def _kill_group(self) -> None:
        # The worker leads its own session: this also reaches children orphaned by kill_main.
        try:
            os.killpg(self.proc.pid, signal.SIGKILL)
        except (ProcessLookupError, PermissionError):
            pass

    def stop(self) -> None:
        if self.proc.poll() is None:
            self.proc.send_signal(signal.SIGTERM)
            try:
                self.proc.wait(10)
            except subprocess.TimeoutExpired:
                pass
        if self.proc.poll() is None or self.pids():
            self.kill()
        self._kill_group()
        self._log.close()


class Workers:
    """Starts workers for one scope and always stops them, printing their logs."""

    def __init__(self) -> None:
        self.started: list[Worker] = []

    def start(self, name: str, env: Mapping[str, str], **kwargs: object) -> Worker:
        worker = Worker(name, env, **kwargs)  # type: ignore[arg-type]
        self.started.append(worker)
        return worker.wait_ready()

    def print_logs(self) -> None:
        """Print every worker's log (captured by pytest, shown when the test failed)."""
        for worker in self.started:
            print(f"----- log of worker {worker.name} -----\n{worker.log()}")

    def stop_all(self) -> None:
        for worker in self.started:
            worker.stop()
        self.print_logs()
        for worker in self.started:
            worker.log_path.unlink(missing_ok=True)
        self.started.clear()


@pytest.fixture(scope="module")
def workers() -> Iterator[Workers]:
    pool = Workers()
    try:
        yield pool
    finally:
        pool.stop_all()


def wait_until(predicate: object, timeout: float = 30.0, every: float = 0.1) -> None:
    """Poll ``predicate()`` until it is true; fail with a message after ``timeout``."""
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        if predicate():  # type: ignore[operator]
            return
        time.sleep(every)
    raise AssertionError(f"condition not met within {timeout}s")


def write_article(folder: Path, name: str, urls: list[str], title: str = "队列测试") -> Path:
    """An article in the corpus's format (blank line, front matter, ``<div>`` + HTML) whose
    headimg is the first URL, proxied, and whose body shows every URL as a ZAKER img box."""
    head = urls[0]
    boxes = "".join(
        f'<div class="img_box" id="id_imagebox_{i}" onclick=""><div class="content_img_div '
        f'perview_img_div"><img class="lazy opacity_0 " id="img_{i}" data-original="{url}" '
        f'src="https://cors.zfour.workers.dev/?{url}"></div></div><p>第{i}段。</p>'
        for i, url in enumerate(urls)
    )
    text = (f"\n---\ntitle: '{title} {name}'\ncategories: \n - 新媒体\n - ZAKER\n - tests\n"
            f"headimg: 'https://cors.zfour.workers.dev/?{head}'\nauthor: ZAKER\n"
            f"comments: false\ndate: Mon, 03 Jan 2022 08:00:00 GMT\n"
            f"thumbnail: 'https://cors.zfour.workers.dev/?{head}'\n---\n\n"
            f"<div>   \n<p>正文。</p>{boxes}\n</div>" + " " * 12)
    path = folder / f"{name}.md"
    path.write_text(text, encoding="utf-8")
    return path


def run_cli(args: list[str], env: Mapping[str, str], timeout: float = 90.0
            ) -> subprocess.CompletedProcess[str]:
    """``python -m archiver ARGS`` as a real process."""
    return subprocess.run([sys.executable, "-m", "archiver", *args], env=dict(env), cwd=ROOT,
                          capture_output=True, text=True, timeout=timeout, check=False)


def start_cli(args: list[str], env: Mapping[str, str]) -> subprocess.Popen[str]:
    return subprocess.Popen([sys.executable, "-m", "archiver", *args], env=dict(env), cwd=ROOT,
                            stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True)
