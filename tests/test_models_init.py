"""The scanner's result objects keep the frozen dataclass's behaviour with their quicker
``__init__`` (archiver.models.filled_at_once)."""

from __future__ import annotations

import dataclasses
import inspect
import pickle

import pytest

from archiver.models import ArticleScan, Reference, Skipped


def test_same_signature_defaults_equality_and_hash() -> None:
    positional = Reference("a", ("img[src]",), "image", "u", "https://x/1.jpg")
    named = Reference(article="a", where=("img[src]",), kind="image", url="u",
                      origin="https://x/1.jpg", proxy=None, alternates=())
    assert positional == named and hash(positional) == hash(named)
    assert positional.proxy is None and positional.alternates == ()
    assert positional != dataclasses.replace(positional, proxy="https://p/")
    assert list(inspect.signature(Reference).parameters) == [
        f.name for f in dataclasses.fields(Reference)]
    with pytest.raises(TypeError):
        Reference("a", ("img[src]",), "image", "u")  # type: ignore[call-arg]
    with pytest.raises(TypeError):
        Skipped("a", "img[src]", "data:,", "data-url", extra=1)  # type: ignore[call-arg]


def test_frozen_replace_pickle_asdict() -> None:
    ref = Reference("a", ("img[src]",), "gif", "u", "https://x/1.gif", "https://p/", ("s",))
    scan = ArticleScan("a", "/p", (ref,), (Skipped("a", "img[src]", "data:,", "data-url"),),
                       ("w",), "Title")
    for obj in (ref, scan, scan.skipped[0]):
        with pytest.raises(dataclasses.FrozenInstanceError):
            obj.article = "b"  # type: ignore[misc]
        assert pickle.loads(pickle.dumps(obj)) == obj
    assert dataclasses.replace(scan, title="T").title == "T"
    assert dataclasses.asdict(scan)["references"][0]["alternates"] == ("s",)
    assert scan.date is None and repr(ref).startswith("Reference(article='a', where=")
