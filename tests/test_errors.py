"""The error tree: the drawing in errors.py is the code, codes are unique, ``retryable`` belongs
to the class, and a stored error reads back as its class."""

from __future__ import annotations

import re

import pytest

from archiver import errors
from archiver.errors import (
    ArchiverError,
    ExtractorExhausted,
    HTTPPermanent,
    HTTPTransient,
    NotMedia,
    Redelivered,
    TimedOut,
    Unsupported,
    class_of,
)
from archiver.models import Asset, Attempt
from archiver.pipeline import failure_record

# "    │   ├── ConnectFailed           connect       yes" -> (ConnectFailed, connect, yes)
_ROW = re.compile(r"^\s*[│├└─ ]*(\w+)\s+(\S+)\s+(yes|no|-)(?=\s|$)", re.M)
TREE = {name: (code, retryable) for name, code, retryable in _ROW.findall(errors.__doc__ or "")}


def _classes(cls: type[ArchiverError] = ArchiverError) -> list[type[ArchiverError]]:
    out = [cls]
    for sub in cls.__subclasses__():
        out.extend(_classes(sub))
    return out


CLASSES = {cls.__name__: cls for cls in _classes() if cls.__module__ == errors.__name__}


def test_the_drawing_names_every_class_and_nothing_else() -> None:
    assert set(TREE) == set(CLASSES)


@pytest.mark.parametrize("name", sorted(CLASSES))
def test_each_class_is_drawn_with_its_code_and_retryability(name: str) -> None:
    cls = CLASSES[name]
    code, retryable = TREE[name]
    if code != "http-<n>":
        assert cls.code == code
    if retryable != "-":
        assert cls.retryable is (retryable == "yes")
    for parent in cls.__mro__[1:]:
        # A subclass is drawn under its parent, so the drawing's order follows the MRO.
        if parent.__name__ in TREE:
            assert list(TREE).index(parent.__name__) < list(TREE).index(name)
            break


def test_codes_are_unique_and_read_back_as_their_class() -> None:
    own = [cls for cls in CLASSES.values() if "code" in vars(cls)]
    assert len({cls.code for cls in own}) == len(own)
    for cls in own:
        assert class_of({"code": cls.code, "message": "x"}) is cls


def test_http_codes_unknown_codes_and_old_records() -> None:
    assert class_of({"code": "http-404"}) is HTTPPermanent
    assert class_of({"code": "http-503"}) is HTTPTransient
    assert class_of({"code": "http-x"}) is ArchiverError
    assert class_of({"code": "from-a-newer-version"}) is ArchiverError
    assert class_of(None) is ArchiverError and not class_of(None).retryable
    # Older records stored a retryable key; the class decides, whatever the key says.
    assert class_of({"code": "not-media", "retryable": True}) is NotMedia
    assert not class_of({"code": "not-media", "retryable": True}).retryable
    assert class_of({"code": "redelivered", "retryable": False}) is Redelivered


def test_retryable_is_the_classes_not_an_instances() -> None:
    exhausted = ExtractorExhausted("failed 3 tries", tries=3)
    assert not exhausted.retryable and exhausted.to_dict() == {
        "code": "extractor-exhausted", "message": "failed 3 tries", "details": {"tries": 3}}
    assert errors.ConfigError.exit_code == 2 and ArchiverError.exit_code == 1


def test_failure_record_keeps_the_error_and_reads_back_as_its_class() -> None:
    asset = Asset(origin="https://a.test/x.jpg", kind="image")
    attempts = (Attempt("direct", asset.origin, 503, TimedOut("slow").to_dict()),)
    record = failure_record(asset, TimedOut("slow"), attempts, started="2026-01-01T00:00:00Z")
    assert record.status == "failed" and record.http_status == 503
    assert record.created_at == "2026-01-01T00:00:00Z" and record.attempts == attempts
    assert record.error == {"code": "timeout", "message": "slow", "retryable": True}
    assert class_of(record.error) is TimedOut
    nothing_tried = failure_record(asset, Unsupported("no fetcher"))
    assert nothing_tried.status == "skipped" and nothing_tried.created_at
    assert class_of(nothing_tried.error) is Unsupported
