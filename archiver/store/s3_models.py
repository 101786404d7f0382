"""botocore's data files, loaded for less: the part of every S3 run's start spent before the
first request (``make_client``), with nothing else to overlap it.

Creating an S3 client reads three of botocore's JSON files (the partitions' endpoints, 1.2 MB;
S3's service model and its endpoint rules, 1.4 and 0.9 MB unzipped) and, for each of the two
model types, lists every service folder of botocore's data (about 400 ``listdir`` calls) to
check that "s3" is one of them. botocore parses the files with ``object_pairs_hook=
OrderedDict``, two to seven times slower than into plain dicts, which keep their order as
well (botocore only iterates the members; nothing of it asks for an OrderedDict). Here the
files are parsed into plain dicts, and "is this service there" looks in that service's folder
only; listing every service is still what iterating the answer does.
"""

from __future__ import annotations

import json
import os
from collections.abc import Callable, Iterator, Sequence
from typing import Any, overload

from botocore.exceptions import DataNotFoundError
from botocore.loaders import JSONFileLoader, Loader


class _PlainJSON(JSONFileLoader):
    """botocore's file loader, the JSON parsed into plain dicts."""

    def _load_file(self, full_path: str, open_method: Callable[..., Any]) -> Any:
        if not os.path.isfile(full_path):
            return None
        with open_method(full_path, "rb") as fp:
            payload = fp.read().decode("utf-8")
        return json.loads(payload)


class QuickLoader(Loader):
    """A botocore ``Loader`` (same search paths, same files, same answers) that parses into
    plain dicts and answers ``name in list_available_services(type)`` from ``name``'s folder."""

    FILE_LOADER_CLASS = _PlainJSON

    # A sequence, not a list: what reads the whole of it gets the full listing.
    def list_available_services(self, type_name: str) -> Sequence[str]:  # type: ignore[override]
        return _Services(self, type_name)


class _Services(Sequence[str]):
    """The services with ``type_name`` data, sorted, listed only when read as a whole."""

    def __init__(self, loader: QuickLoader, type_name: str) -> None:
        self._loader = loader
        self._type = type_name
        self._all: list[str] | None = None

    def __contains__(self, name: object) -> bool:
        if not isinstance(name, str) or not name or name.startswith(".") or os.sep in name:
            return name in self._listed()
        try:  # the folders and files the full listing would look at for this name
            self._loader.list_api_versions(name, self._type)
        except DataNotFoundError:
            return False
        return True

    def _listed(self) -> list[str]:
        if self._all is None:
            self._all = list(Loader.list_available_services(self._loader, self._type))
        return self._all

    @overload
    def __getitem__(self, index: int) -> str: ...

    @overload
    def __getitem__(self, index: slice) -> Sequence[str]: ...

    def __getitem__(self, index: int | slice) -> str | Sequence[str]:
        return self._listed()[index]

    def __len__(self) -> int:
        return len(self._listed())

    def __iter__(self) -> Iterator[str]:
        return iter(self._listed())


def quick_loader(data_path: str | None) -> QuickLoader:
    """A ``QuickLoader`` searching what botocore's ``create_loader`` would for ``data_path``
    (``AWS_DATA_PATH``: extra folders, ``os.pathsep``-separated)."""
    if data_path is None:
        return QuickLoader()
    return QuickLoader(extra_search_paths=[os.path.expanduser(os.path.expandvars(path))
                                           for path in data_path.split(os.pathsep)])
