"""The index's rows in memory, compact: one tuple per asset instead of one dict.

A re-run holds a row for every record of the archive (336,524 at 100,000 generated articles).
As the dicts ``json.loads`` makes, a row was 1.4 KB (a 14-key dict, and a string object for
every value: ``"archived"``, ``"image/jpeg"``, ``"direct"`` once per row); as a tuple whose
repeated values (status, kind, content type, route, error code, segments) are shared it is
about half that. ``Rows`` is still a mapping of asset id -> row dict, made when asked for:
planning (``status_of``, ``statuses``) and the article manifests' digests (``summary``) read
the tuples without making one.

The rows' bytes (``index.jsonl``) are parsed a megabyte of lines at a time (``parse_lines``):
the whole index as one JSON array took four copies of its bytes at once (165 MB at 100,000
articles) and twice the CPU.
"""

from __future__ import annotations

import json
import operator
from collections import Counter
from collections.abc import Iterator, MutableMapping
from typing import Any

# A row's fields, in the tuple's order; ``id`` is the key. Last in the tuple: any other keys.
FIELDS = ("status", "origin", "kind", "key", "sha256", "size", "content_type", "route",
          "updated_at", "error", "record_version", "record_size", "file", "segments")
_KNOWN = frozenset((*FIELDS, "id"))
_SEGMENTS = FIELDS.index("segments")
# Values many rows share, one object each (the rest are per asset).
_SHARED = tuple(FIELDS.index(name) for name in ("status", "kind", "content_type", "route",
                                                 "error"))
# What an article manifest copies from a row (``articles._SUMMARY_FIELDS``), by position.
SUMMARY = ("status", "key", "sha256", "size", "content_type", "error")
_SUMMARY_AT = operator.itemgetter(*(FIELDS.index(name) for name in SUMMARY))
_CHUNK = 1 << 20  # bytes of lines parsed per json.loads


class _Missing:
    """A field the row does not have (an older or damaged row): left out of its dict."""

    def __repr__(self) -> str:
        return "MISSING"


MISSING: Any = _Missing()
Packed = tuple[Any, ...]


class Rows(MutableMapping[str, dict[str, Any]]):
    """Index rows by asset id; a row read is a new dict each time (change it, then store it
    back to keep the change)."""

    __slots__ = ("_packed", "_shared")

    def __init__(self) -> None:
        self._packed: dict[str, Packed] = {}
        self._shared: dict[Any, Any] = {}

    def __getitem__(self, asset: str) -> dict[str, Any]:
        return unpack(asset, self._packed[asset])

    def __setitem__(self, asset: str, row: dict[str, Any]) -> None:
        self._packed[asset] = self._pack(row)

    def __delitem__(self, asset: str) -> None:
        del self._packed[asset]

    def __iter__(self) -> Iterator[str]:
        return iter(self._packed)

    def __len__(self) -> int:
        return len(self._packed)

    def __contains__(self, asset: object) -> bool:
        return asset in self._packed

    def copy(self) -> Rows:
        out = Rows()
        out._packed = dict(self._packed)
        out._shared = self._shared
        return out

    def status_of(self, asset: str) -> str | None:
        packed = self._packed.get(asset)
        status = packed[0] if packed is not None else None
        return status if isinstance(status, str) else None

    def statuses(self) -> dict[str, str]:
        """Asset id -> status (rows without one left out)."""
        return {asset: packed[0] for asset, packed in self._packed.items()
                if isinstance(packed[0], str)}

    def count_statuses(self) -> Counter[str]:
        """Rows by status (rows without one left out)."""
        counts = Counter(packed[0] for packed in self._packed.values())
        counts.pop(MISSING, None)
        return counts

    def summary(self, asset: str) -> tuple[Any, ...] | None:
        """The ``SUMMARY`` fields of a row in order (None for a field it lacks), or None."""
        packed = self._packed.get(asset)
        if packed is None:
            return None
        fields: tuple[Any, ...] = _SUMMARY_AT(packed)
        return tuple(None if v is MISSING else v for v in fields) if MISSING in fields \
            else fields

    def located(self) -> dict[str, list[str]]:
        """Asset id -> the segments holding its versions, of the rows that name any."""
        return {asset: list(packed[_SEGMENTS]) for asset, packed in self._packed.items()
                if isinstance(packed[_SEGMENTS], tuple) and packed[_SEGMENTS]}

    def _pack(self, row: dict[str, Any]) -> Packed:
        get = row.get
        values = [get(name, MISSING) for name in FIELDS]
        shared = self._shared
        for n in _SHARED:
            value = values[n]
            if isinstance(value, str):
                values[n] = shared.setdefault(value, value)
        segments = values[_SEGMENTS]
        if isinstance(segments, list):
            names = tuple(segments)
            values[_SEGMENTS] = shared.setdefault(names, names)
        extra = None if row.keys() <= _KNOWN else \
            {k: v for k, v in row.items() if k not in _KNOWN}
        values.append(extra)
        return tuple(values)

    def load_lines(self, data: bytes, names: list[str]) -> list[str]:
        """Add the rows of index lines ``data`` (``encode_index``: a header naming the
        segments, then one row per line, its segments by their place in the header); return
        the segment names, ``names`` until a header says otherwise. A damaged line is left
        out (it costs only its record a re-read)."""
        for row in parse_lines(data):
            try:
                if "id" not in row and isinstance(row.get("segments"), list):
                    names = [str(name) for name in row["segments"]]
                    continue
                if row.get("segments"):
                    row["segments"] = [names[n] for n in row["segments"]]
                asset = row.pop("id")
                if not isinstance(asset, str):
                    continue
                self._packed[asset] = self._pack(row)
            except (KeyError, TypeError, IndexError, AttributeError):
                continue
        return names


def unpack(asset: str, packed: Packed) -> dict[str, Any]:
    row: dict[str, Any] = {"id": asset}
    for name, value in zip(FIELDS, packed, strict=False):
        if value is not MISSING:
            row[name] = value
    segments = row.get("segments")
    if isinstance(segments, tuple):
        row["segments"] = list(segments)
    if packed[-1]:
        row.update(packed[-1])
    return row


def parse_lines(data: bytes) -> Iterator[Any]:
    """The JSON value of each line of ``data``, a megabyte of lines per ``json.loads`` (one
    array of them); a chunk with a damaged or empty line is parsed line by line, leaving out
    the lines that do not parse."""
    start, end = 0, len(data)
    while start < end:
        stop = data.find(b"\n", start + _CHUNK)
        stop = end if stop < 0 else stop
        chunk = data[start:stop].strip()
        start = stop + 1
        if not chunk:
            continue
        try:
            yield from json.loads(b"[" + chunk.replace(b"\n", b",") + b"]")
        except ValueError:
            for line in chunk.splitlines():
                try:
                    yield json.loads(line)
                except ValueError:
                    continue
