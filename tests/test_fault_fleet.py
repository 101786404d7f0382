"""Faults against a running fleet (2 prefork workers, 2 children each, real redis-server with
AOF, moto's S3 behind a proxy, the local origin), with default recovery settings. Each test
injects one fault of the matrix (``tests.support.chaos``, which ``bench/chaos.py`` runs at a
larger size) while a batch is being archived, clears it, and then, with no manual step, checks
the outcome: 0 lost, 0 wrong bytes, 0 objects stored twice, duplicate origin fetches at most
the downloads in flight at a kill, converged within 60 s of the fault clearing."""

from __future__ import annotations

from collections.abc import Callable, Iterator

import pytest

from tests.support import chaos
from tests.support.faults import SmallFs, small_fs
from tests.support.fleet import Fleet, Served, running, serve
from tests.support.origin import OriginServer

pytestmark = pytest.mark.faults


@pytest.fixture(scope="module")
def fleet(tmp_path_factory: pytest.TempPathFactory, origin_server: OriginServer,
          s3_endpoint: str) -> Iterator[Fleet]:
    with running(tmp_path_factory.mktemp("fleet"), origin_server, s3_endpoint,
                 workers=2) as the_fleet:
        yield the_fleet


@pytest.fixture(scope="module")
def local_fleet(tmp_path_factory: pytest.TempPathFactory, origin_server: OriginServer,
                s3_endpoint: str) -> Iterator[tuple[Fleet, SmallFs]]:
    """One prefork worker (2 children) serving a local store on a tmpfs (we run as root)."""
    with small_fs(tmp_path_factory.mktemp("fs"), 64 * 1024 * 1024) as fs, running(
            tmp_path_factory.mktemp("local"), origin_server, s3_endpoint, workers=1,
            store=str(fs.path / "archive")) as the_fleet:
        yield the_fleet, fs


def _holds(fleet: Fleet, served: list[Served], row: chaos.Row) -> None:
    outcome = chaos.run(fleet, served, row)
    assert not outcome.problems(), outcome


def test_hostile_origin_responses_end_right(fleet: Fleet, origin: OriginServer) -> None:
    served = serve(origin, "calm", 4) + chaos.hostile_assets(
        origin, "hostile", fleet.settings.fetch.max_redirects)
    _holds(fleet, served, chaos.Row("hostile origin", chaos.no_fault))


def test_s3_unreachable_for_20_seconds(fleet: Fleet, origin: OriginServer) -> None:
    _holds(fleet, serve(origin, "s3cut", 12, seconds=1.0),
           chaos.Row("S3 unreachable", chaos.s3_outage(20.0)))


@pytest.mark.parametrize("fault", [chaos.store_full, chaos.store_read_only])
def test_local_store_full_or_read_only_for_3_seconds(
        local_fleet: tuple[Fleet, SmallFs], origin: OriginServer,
        fault: Callable[[SmallFs, float], chaos.Fault]) -> None:
    """Downloads whose bytes the store refused are the only ones fetched again: a worker
    fetches nothing while its store still refuses writes (they were fetched again and again,
    92 and 165 extra fetches in 250 at bench size), and no asset spends its retries on it."""
    fleet, fs = local_fleet
    name = fault.__name__.replace("_", "-")
    _holds(fleet, serve(origin, name, 6, seconds=1.0), chaos.Row(name, fault(fs, 3.0)))
