"""What ``enqueue`` says when no live worker serves its store (drivers/fleet.fleet_warning),
read from workers' announcements in a real Redis."""

from __future__ import annotations

from collections.abc import Iterator

import pytest
import redis

from archiver.drivers.fleet import WORKER, fleet_warning


@pytest.fixture
def client(redis_url: str) -> Iterator[redis.Redis]:
    client = redis.Redis.from_url(redis_url, db=9, decode_responses=True)
    client.flushdb()
    yield client
    client.flushdb()
    client.close()


def test_the_warning_counts_the_live_workers_and_names_their_stores(
        client: redis.Redis) -> None:
    mine, theirs = "s3://mine/a", "s3://theirs/b"
    assert fleet_warning(client, mine) == (
        f"no live worker announces itself on this broker: the tasks for {mine} wait until one "
        "starts")
    client.set(f"{WORKER}w1", theirs, px=60_000)
    assert fleet_warning(client, mine) == (
        f"no live worker serves {mine}: the live one serves {theirs} and will refuse these "
        "tasks as wrong-store")
    client.set(f"{WORKER}w2", theirs, px=60_000)
    assert fleet_warning(client, mine) == (
        f"no live worker serves {mine}: the 2 live ones serve {theirs} and will refuse these "
        "tasks as wrong-store")
    client.set(f"{WORKER}w3", mine, px=60_000)
    assert fleet_warning(client, mine) is None
