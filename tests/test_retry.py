"""How long to wait before trying again: backoff with jitter and a cap, and Retry-After."""

from __future__ import annotations

from archiver.fetch.retry import backoff, parse_retry_after


def test_backoff_grows_with_jitter_and_cap() -> None:
    assert backoff(1, 0.5, 30, rand=lambda: 0.0) == 0.25
    assert backoff(1, 0.5, 30, rand=lambda: 1.0) == 0.5
    assert backoff(4, 0.5, 30, rand=lambda: 1.0) == 4.0
    assert backoff(20, 0.5, 30, rand=lambda: 1.0) == 30.0


def test_retry_after_seconds_and_http_date() -> None:
    now = 1_700_000_000.0
    assert parse_retry_after("7", 120) == 7.0
    assert parse_retry_after("100000", 120) == 120.0
    assert parse_retry_after("Tue, 14 Nov 2023 22:13:40 GMT", 120, now=lambda: now) == 20.0
    assert parse_retry_after("Tue, 14 Nov 2023 22:00:00 GMT", 120, now=lambda: now) == 0.0
    assert parse_retry_after("soon", 120) is None
    assert parse_retry_after(None, 120) is None
