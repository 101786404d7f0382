"""The pipeline for one asset, on the real HTTP fetcher, origin server and a local store: what
is fetched, what is not fetched again, and what becomes of a failure or a bug."""

from __future__ import annotations

from collections.abc import Iterator
from pathlib import Path

import pytest

from archiver.errors import InternalError, class_of
from archiver.fetch.base import Fetched
from archiver.models import Asset, Attempt, Citation
from archiver.pipeline import Context, archive_asset, build_context, fetch_asset
from archiver.store.local import LocalStore
from tests.support import media
from tests.support.origin import OriginServer, Response
from tests.test_fetch_http import ZAKER, make_settings


class Exploding:
    """A fetcher with a bug in it: it raises what archiver does not expect."""

    name = "exploding"
    example_urls = ("http://boom.test/a.jpg",)

    def __init__(self, exc: BaseException) -> None:
        self.exc = exc

    def matches(self, asset: Asset) -> bool:
        return asset.origin.startswith("http://boom.test/")

    def fetch(self, asset: Asset, attempts: list[Attempt]) -> Fetched:
        raise self.exc

    def close(self) -> None:
        pass


class Abort(Exception):
    """Stands for what a driver handles itself (Celery's soft time limit)."""


@pytest.fixture
def ctx(origin: OriginServer, tmp_path: Path) -> Iterator[Context]:
    with LocalStore(tmp_path / "archive") as store, \
            build_context(make_settings(origin, retries=0), store, passthrough=(Abort,),
                          extra_fetchers=[Exploding(KeyError("oops")),
                                          Exploding(Abort())]) as context:
        yield context


def image(path: str, article: str = "a.md") -> Asset:
    return Asset(origin=f"{ZAKER}{path}", kind="image", urls=(f"{ZAKER}{path}",),
                 citations=(Citation(article, ("img[src]",)),))


def test_an_archived_asset_is_not_fetched_again_and_gains_citations(
        ctx: Context, origin: OriginServer) -> None:
    body = media.jpeg(30, 20)
    origin.add("/p/a.jpg", Response(body))
    first = archive_asset(image("/p/a.jpg"), ctx)
    assert first.status == "archived" and first.key and ctx.store.exists(first.key)
    again = archive_asset(image("/p/a.jpg", article="b.md"), ctx)
    assert origin.hits["/p/a.jpg"] == 1
    assert again.key == first.key
    assert {c.article for c in again.citations} == {"a.md", "b.md"}


def test_an_archived_record_whose_object_is_gone_is_fetched_again(
        ctx: Context, origin: OriginServer, tmp_path: Path) -> None:
    origin.add("/p/b.jpg", Response(media.jpeg(31, 20)))
    first = archive_asset(image("/p/b.jpg"), ctx)
    assert first.key is not None
    (tmp_path / "archive" / first.key).unlink()
    again = archive_asset(image("/p/b.jpg"), ctx)
    assert origin.hits["/p/b.jpg"] == 2 and ctx.store.exists(str(again.key))


def test_fetch_asset_trusts_the_plan(ctx: Context, origin: OriginServer) -> None:
    origin.add("/p/c.jpg", Response(media.jpeg(32, 20)))
    archive_asset(image("/p/c.jpg"), ctx)
    # The plan said "not archived": fetch_asset does not look, it fetches (and the merge keeps
    # the archived record as it was).
    fetch_asset(image("/p/c.jpg"), ctx)
    assert origin.hits["/p/c.jpg"] == 2


def test_failures_are_records_with_their_error(ctx: Context, origin: OriginServer) -> None:
    origin.add("/p/gone.jpg", Response(status=404))
    gone = archive_asset(image("/p/gone.jpg"), ctx)
    assert gone.status == "failed" and gone.http_status == 404 and len(gone.attempts) == 1
    assert gone.error is not None and gone.error["code"] == "http-404"
    assert ctx.manifest.load(gone.id) == gone
    nothing = archive_asset(Asset(origin="ftp://a.test/x.jpg", kind="image"), ctx)
    assert nothing.status == "skipped"
    assert nothing.error is not None and nothing.error["code"] == "unsupported"


def test_a_bug_is_recorded_as_internal_and_a_passthrough_is_raised(ctx: Context) -> None:
    bug = archive_asset(Asset(origin="http://boom.test/a.jpg", kind="image"), ctx)
    assert bug.status == "failed" and class_of(bug.error) is InternalError
    assert bug.error is not None and "KeyError" in bug.error["message"]
    ctx.fetchers = [ctx.fetchers[1], *ctx.fetchers[2:]]  # the one raising Abort first
    with pytest.raises(Abort):
        archive_asset(Asset(origin="http://boom.test/b.jpg", kind="image"), ctx)
