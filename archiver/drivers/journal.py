"""Each batch's list of assets, kept in the store, so that the fleet gets back what a Redis that
lost its data lost of a batch nobody waits on (a plain ``archiver enqueue``).

``enqueue`` writes ``manifest/batches/<batch>.json.gz`` (the batch's assets in the order sent,
gzipped JSON: one object per batch) before it sends the first message, and holds
``sending:<batch>`` in Redis while it sends. The store is the fleet's (one store per fleet,
checked: ``fleet``), and it outlives Redis.

Every worker's sweeper thread runs ``Rescue.sweep``, and one worker per ``sweep_interval`` does
the work (a token in Redis, ``rescue``, set NX for one interval): one LIST of the journals, then
what Redis says of every batch listed, in one pipeline (``loss.Recoverer.standings``). A batch
Redis still vouches for costs nothing more; a finished one (every asset has its final status,
nothing in flight) has its journal removed, so the listing stays short; one whose enqueuer is
still sending is left to it. A batch Redis lost (its meta gone, or its count below its total)
is looked at again one heartbeat later (``loss``: live workers take back their claims and
in-flight entries meanwhile); still lost, its journal is read and ``loss.Recoverer.recover``
publishes again what may be lost, under the batch's recovery lease, which ``enqueue --wait``'s
``loss.Recovery`` takes too: a batch is never recovered by two processes at once. Recovery is
therefore bounded by about ``sweep_interval`` plus that heartbeat after Redis answers again,
plus the assets' wait in the queue.

A store or a Redis that does not answer skips the round (one warning): the next tries again.
Batches sent by an enqueuer older than the journals have none: only ``enqueue --wait`` gets
those back.
"""

from __future__ import annotations

import gzip
import json
import logging
import secrets
import threading
from collections.abc import Sequence

import redis
from celery import Celery

from archiver.drivers.coordination import PREFIX, guarded
from archiver.drivers.loss import Recoverer
from archiver.errors import ArchiverError, ManifestError, ObjectMissing
from archiver.manifest import Manifest
from archiver.models import Asset
from archiver.settings import Settings
from archiver.store.base import Store

log = logging.getLogger(__name__)

JOURNALS_PREFIX = "manifest/batches/"
_SUFFIX = ".json.gz"
TURN = f"{PREFIX}rescue"


def journal_key(batch: str) -> str:
    return f"{JOURNALS_PREFIX}{batch}{_SUFFIX}"


def write_journal(store: Store, batch: str, assets: Sequence[Asset]) -> None:
    """The batch's assets, in the order they are sent, as the batch's journal."""
    doc = {"batch": batch, "assets": [asset.to_dict() for asset in assets]}
    data = gzip.compress(json.dumps(doc, separators=(",", ":")).encode(), compresslevel=1,
                         mtime=0)
    store.put_bytes(journal_key(batch), data, "application/gzip", overwrite=True)


def read_journal(store: Store, batch: str) -> list[Asset]:
    """The batch's assets, in the order sent. ObjectMissing when it has no journal,
    ManifestError when it is unreadable, the store's error when the store fails."""
    data = store.get_bytes(journal_key(batch))
    try:
        doc = json.loads(gzip.decompress(data))
        return [Asset.from_dict(item) for item in doc["assets"]]
    except (OSError, EOFError, ValueError, KeyError, TypeError) as exc:
        raise ManifestError(f"unreadable batch journal {journal_key(batch)}: {exc}") from exc


def journaled(store: Store) -> list[str]:
    """The batches that have a journal (one listing)."""
    return sorted(info.key[len(JOURNALS_PREFIX):-len(_SUFFIX)]
                  for info in store.list(JOURNALS_PREFIX) if info.key.endswith(_SUFFIX))


class Rescue:
    """Gets back, from their journals, the batches Redis lost (see the module's docstring).
    ``stop``: set when the worker shuts down (the heartbeat's wait ends early)."""

    def __init__(self, client: redis.Redis, settings: Settings, store: Store,
                 app: Celery | None = None, stop: threading.Event | None = None) -> None:
        self.client = client
        self.store = store
        self.recoverer = Recoverer(client, settings, app)
        self.turn_ms = max(1, int(settings.celery.sweep_interval * 1000))
        self.stop = stop or threading.Event()
        self._token = secrets.token_hex(8)

    def sweep(self) -> int:
        """One round, when it is this worker's turn; returns how many assets were published
        again. Never raises for a store or a Redis that does not answer."""
        try:
            if not guarded(lambda: self.client.set(TURN, self._token, nx=True,
                                                   px=self.turn_ms)):
                return 0  # another worker's round
            lost = self._lost(journaled(self.store))
            if not lost:
                return 0
            log.warning("Redis lost data of %d batches (%s); publishing again what may be "
                        "lost in %.0fs", len(lost), ", ".join(lost[:5]),
                        self.recoverer.settle)
            if self.stop.wait(self.recoverer.settle):
                return 0
            return sum(self._recover(batch) for batch in self._lost(lost))
        except ArchiverError as exc:
            log.warning("batch journals not looked at: %s (%s); next round", exc.message,
                        exc.code)
            return 0

    def _lost(self, batches: list[str]) -> list[str]:
        """Those of ``batches`` Redis lost; the journals of the finished ones are removed."""
        lost, finished = [], []
        for batch, standing in zip(batches, self.recoverer.standings(batches), strict=True):
            if standing.sending or standing.recovering:
                continue  # its enqueuer's, or being got back by another process
            if standing.lost_from() is not None:
                lost.append(batch)
            elif standing.finished:
                finished.append(batch)
        if finished:
            try:
                self.store.delete([journal_key(batch) for batch in finished])
            except ArchiverError as exc:  # removed at the next round
                log.warning("finished batches' journals not removed: %s", exc.message)
        return lost

    def _recover(self, batch: str) -> int:
        try:
            assets = read_journal(self.store, batch)
            # A fresh manifest each time: what it caches of the index is as old as this look.
            published = self.recoverer.recover(batch, assets, Manifest(self.store), {})
        except ObjectMissing:
            return 0  # finished, and its journal removed, meanwhile
        except ArchiverError as exc:
            log.warning("batch %s not got back this round: %s (%s)", batch, exc.message,
                        exc.code)
            return 0
        return published or 0

    def close(self) -> None:
        self.recoverer.close()
