"""The progress bars of ``archive --progress`` and ``enqueue --wait --progress`` (rich, on
stderr), and the choice between bar, timed lines and silence."""

from __future__ import annotations

import time
from collections import Counter

import pytest

from archiver.cli import progress
from archiver.cli.progress import counts_progress, human_bytes, record_progress
from archiver.models import Record


def test_the_records_bar_counts_failures_skips_and_bytes(
        capsys: pytest.CaptureFixture[str]) -> None:
    with record_progress(3, True) as tick:
        tick(Record(origin="https://a/1.jpg", kind="image", status="archived", size=2048))
        tick(Record(origin="https://a/2.jpg", kind="image", status="failed"))
        tick(Record(origin="https://a/3.jpg", kind="image", status="skipped"))
    err = capsys.readouterr().err
    assert "archiving" in err and "3/3" in err
    assert "failed 1 skipped 1 2.0 KB" in err


def test_the_workers_bar_shows_the_counts_it_is_given(capsys: pytest.CaptureFixture[str]) -> None:
    with counts_progress(4, True) as update:
        update(Counter({"archived": 2, "failed": 1}))
    err = capsys.readouterr().err
    assert "workers" in err and "3/4" in err and "failed 1" in err


@pytest.mark.parametrize("show", [False, None])
def test_nothing_to_do_or_no_progress_prints_nothing(show: bool | None,
                                                     capsys: pytest.CaptureFixture[str]) -> None:
    with record_progress(0 if show is None else 5, show) as tick:
        tick(Record(origin="https://a/1.jpg", kind="image", status="archived", size=1))
    assert capsys.readouterr().err == ""


def test_without_a_terminal_the_lines_are_chosen(monkeypatch: pytest.MonkeyPatch,
                                                 capsys: pytest.CaptureFixture[str]) -> None:
    monkeypatch.setattr(progress, "INTERVAL", 0.01)
    with counts_progress(2, None) as update:
        update(Counter({"archived": 2}))
        time.sleep(0.1)
    assert "archiver: 2/2 assets done (0 failed, 0 skipped)" in capsys.readouterr().err


def test_human_bytes() -> None:
    assert [human_bytes(n) for n in (0, 1023, 1024, 5 * 1024**2, 3 * 1024**4)] == [
        "0 B", "1023 B", "1.0 KB", "5.0 MB", "3072.0 GB"]
