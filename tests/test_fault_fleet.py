"""Faults against a running fleet (2 prefork workers, 2 children each, real redis-server with
AOF, moto's S3 behind a proxy, the local origin), with default recovery settings. Each test
injects one fault while assets are being archived, clears it, and then, with no manual step,
checks the outcome ``bench/chaos.py`` measures at a larger size: 0 lost, 0 wrong bytes,
0 objects stored twice, duplicate origin fetches at most the downloads in flight at a kill,
converged within 60 s of the fault clearing."""

from __future__ import annotations

import time
from collections.abc import Iterator

import pytest

from tests.support import hostile, media
from tests.support.fleet import Fleet, Outcome, Served, converge, media_body, media_keys, serve
from tests.support.origin import OriginServer

pytestmark = pytest.mark.faults


@pytest.fixture(scope="module")
def fleet(tmp_path_factory: pytest.TempPathFactory, origin_server: OriginServer,
          s3_endpoint: str) -> Iterator[Fleet]:
    the_fleet = Fleet(tmp_path_factory.mktemp("fleet"), origin_server, s3_endpoint)
    try:
        the_fleet.start_workers(2)
        yield the_fleet
    finally:
        print(the_fleet.logs())
        the_fleet.close()


def _outcome(fleet: Fleet, served: list[Served], fault: str, cleared: float,
             before: set[str], in_flight: int = 0) -> Outcome:
    with fleet.store() as store:
        out = converge(store, served, fleet.origin, fault=fault, since=cleared,
                       in_flight=in_flight, before=before)
    assert not out.problems(), out
    return out


def _before(fleet: Fleet) -> set[str]:
    with fleet.store() as store:
        return media_keys(store)


def test_hostile_origin_responses_end_right_with_no_manual_step(fleet: Fleet,
                                                                 origin: OriginServer) -> None:
    before = _before(fleet)
    served = serve(origin, "calm", 4)
    body = {name: media_body(i, 20_000) for i, name in enumerate(
        ("429", "503", "slow", "truncated"))}
    cases: list[tuple[str, object, str, int]] = [
        ("429", hostile.retry_after(429, 1, body["429"]), "archived", 2),
        ("503", hostile.retry_after(503, 1, body["503"]), "archived", 2),
        ("slow", hostile.slow(body["slow"], 2.0), "archived", 1),
        ("truncated", hostile.truncated_then(body["truncated"]), "archived", 2),
        ("html", hostile.html_200(), "not-media", 1),
        # A loop is followed fetch.max_redirects times, then failed for good.
        ("loop", hostile.redirect_loop("/hostile/loop_1024.jpg"), "redirects",
         1 + fleet.settings.fetch.max_redirects),
        ("stacked", hostile.stacked_gzip_bomb(), "too-large", 1),
        ("huge", hostile.as_image(hostile.huge_png()), "archived", 1),
    ]
    for name, response, expect, fetches in cases:
        path = f"/hostile/{name}_1024.jpg"
        origin.add(path, response)  # type: ignore[arg-type]
        data = body.get(name) or (hostile.huge_png() if name == "huge" else media.HTML_ERROR_PAGE)
        served.append(Served(path, data, expect, fetches))
    fleet.enqueue(served, "hostile")
    _outcome(fleet, served, "hostile origin", time.monotonic(), before)
