"""LocalHostLimiter: per-host concurrency caps, rate spacing and pauses, with real threads."""

from __future__ import annotations

import threading

from archiver.fetch.limits import LocalHostLimiter
from archiver.settings import Settings


class FakeTime:
    """A clock that only moves when someone sleeps, so waits are exact and instant."""

    def __init__(self) -> None:
        self.now = 1000.0
        self.slept: list[float] = []
        self._lock = threading.Lock()

    def clock(self) -> float:
        with self._lock:
            return self.now

    def sleep(self, seconds: float) -> None:
        with self._lock:
            self.slept.append(round(seconds, 6))
            self.now += seconds


def test_concurrency_cap_per_host_from_rule_or_default() -> None:
    settings = Settings.model_validate(
        {
            "fetch": {
                "per_host_concurrency": 3,
                "hosts": [{"pattern": "*.myzaker.com", "max_concurrency": 1}],
            }
        }
    )
    limiter = LocalHostLimiter(settings)
    peak: dict[str, int] = {}
    current: dict[str, int] = {}
    lock = threading.Lock()
    release = threading.Event()

    def work(host: str) -> None:
        with limiter.slot(host):
            with lock:
                current[host] = current.get(host, 0) + 1
                peak[host] = max(peak.get(host, 0), current[host])
            release.wait(0.05)
            with lock:
                current[host] -= 1

    threads = [
        threading.Thread(target=work, args=(h,))
        for h in ["zkres1.myzaker.com"] * 4 + ["static.cnbetacdn.com"] * 8
    ]
    for t in threads:
        t.start()
    for t in threads:
        t.join(10)
    assert peak == {"zkres1.myzaker.com": 1, "static.cnbetacdn.com": 3}


def test_pause_holds_back_new_requests_for_that_host_only() -> None:
    fake = FakeTime()
    limiter = LocalHostLimiter(Settings(), clock=fake.clock, sleep=fake.sleep)
    limiter.pause("Origin.Example", 5.0)
    limiter.pause("origin.example", 1.0)  # a shorter pause does not cut the longer one short
    with limiter.slot("other.example"):
        pass
    assert fake.slept == []
    with limiter.slot("origin.example"):
        pass
    assert fake.slept == [5.0]
    with limiter.slot("origin.example"):  # the pause is over
        pass
    assert fake.slept == [5.0]


def test_rate_spaces_request_starts() -> None:
    fake = FakeTime()
    settings = Settings.model_validate(
        {"fetch": {"hosts": [{"pattern": "slow.example", "rate": 4.0}]}}
    )
    limiter = LocalHostLimiter(settings, clock=fake.clock, sleep=fake.sleep)
    start = fake.now
    starts = []
    for _ in range(3):
        with limiter.slot("slow.example"):
            starts.append(fake.now - start)
    assert starts == [0.0, 0.25, 0.5]


def test_slot_released_on_error() -> None:
    settings = Settings.model_validate({"fetch": {"per_host_concurrency": 1}})
    limiter = LocalHostLimiter(settings)
    try:
        with limiter.slot("h"):
            raise RuntimeError("boom")
    except RuntimeError:
        pass
    done = threading.Event()

    def again() -> None:
        with limiter.slot("h"):
            done.set()

    t = threading.Thread(target=again)
    t.start()
    t.join(5)
    assert done.is_set()
