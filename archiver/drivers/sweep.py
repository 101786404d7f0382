"""Recovering a dead worker's assets in seconds, not after the visibility timeout.

A task records in Redis that its asset is in flight (``Inflight.started``), with a deadline a
heartbeat keeps pushing back while the task runs (every ``claim_ttl / 4`` seconds, on the same
thread that renews the asset's claim); a retry moves the deadline past its countdown, and the
final status removes the entry. A worker that dies stops the heartbeat: its entries pass their
deadline, and its claims expire, ``claim_ttl`` seconds after the kill at the latest (a prefork
child's parent frees the claim of a child it saw die at once: ``release_dead``). A
``Sweeper`` (a thread in every worker, and ``enqueue --wait``) looks every
``sweep_interval`` seconds for entries past their deadline whose asset has no claim and no
final status, and publishes their task again. Which sweeper republishes an asset is decided in
Redis (one script), so a lost asset is republished once, and then not again before the
visibility timeout, the broker's own backstop.

A second delivery is a no-op: the claim stops two workers at once, the manifest stops a second
fetch, and a task whose batch already has the asset's final status (the original message,
given back by the broker after the visibility timeout) returns that status without a look.

Keys (next to ``coordination``'s):

    batches                 sorted set of open batches by creation time (ms)
    batch:<id>:inflight     hash asset id -> "<deadline ms>|<asset JSON>"
"""

from __future__ import annotations

import json
import logging
import random
import threading
from collections.abc import Iterator
from contextlib import contextmanager
from datetime import UTC, datetime
from typing import TYPE_CHECKING, Any

import redis
from celery import Celery
from celery.exceptions import Retry

from archiver.drivers.coordination import (
    BATCHES,
    CLAIM,
    PREFIX,
    Claims,
    guarded,
    holder,
    lease_key,
)
from archiver.errors import ArchiverError
from archiver.models import Asset, asset_id
from archiver.settings import Settings

if TYPE_CHECKING:
    from archiver.drivers.journal import Rescue

log = logging.getLogger(__name__)


# KEYS: inflight, batch statuses. ARGV: asset id, asset JSON, delay ms, ttl ms, mode.
# mode "set": the deadline becomes now + delay; "extend": it only grows (a late heartbeat must
# not cut a retry's countdown short, nor the hold of a republished task). Returns the final
# status when the batch has one (the entry is then left alone), else "".
_MARK = """
local final = redis.call('HGET', KEYS[2], ARGV[1])
if final then return final end
local t = redis.call('TIME')
local now = tonumber(t[1]) * 1000 + math.floor(tonumber(t[2]) / 1000)
local due = now + tonumber(ARGV[3])
if ARGV[5] == 'extend' then
  local old = redis.call('HGET', KEYS[1], ARGV[1])
  if old then
    local sep = string.find(old, '|', 1, true)
    if tonumber(string.sub(old, 1, sep - 1)) >= due then return '' end
  end
end
redis.call('HSET', KEYS[1], ARGV[1], string.format('%.0f', due) .. '|' .. ARGV[2])
redis.call('PEXPIRE', KEYS[1], ARGV[4])
return ''
"""

# KEYS: inflight, batch statuses. ARGV: claim key prefix, hold ms. Returns the asset JSONs to
# publish again: past their deadline, unclaimed, without a final status; each is held back
# for ``hold`` ms so that no other sweeper publishes it too. Entries with a final status go.
_SWEEP = """
local t = redis.call('TIME')
local now = tonumber(t[1]) * 1000 + math.floor(tonumber(t[2]) / 1000)
local out = {}
local entries = redis.call('HGETALL', KEYS[1])
for i = 1, #entries, 2 do
  local id, value = entries[i], entries[i + 1]
  if redis.call('HEXISTS', KEYS[2], id) == 1 then
    redis.call('HDEL', KEYS[1], id)
  else
    local sep = string.find(value, '|', 1, true)
    if tonumber(string.sub(value, 1, sep - 1)) <= now
        and redis.call('EXISTS', ARGV[1] .. id) == 0 then
      local body = string.sub(value, sep + 1)
      redis.call('HSET', KEYS[1], id, string.format('%.0f', now + tonumber(ARGV[2])) .. '|' .. body)
      table.insert(out, body)
    end
  end
end
return out
"""


# KEYS: a claim. ARGV: the start of its holder's tokens. Deletes the claim if that holder has it.
_RELEASE_DEAD = """
local token = redis.call('GET', KEYS[1])
if token and string.sub(token, 1, string.len(ARGV[1])) == ARGV[1] then
  return redis.call('DEL', KEYS[1])
end
return 0
"""


def release_dead(client: redis.Redis, asset: dict[str, Any], pid: int) -> bool:
    """Free ``asset``'s claim if the dead process ``pid`` (a prefork child of this machine, which
    its parent saw die) holds it, so that its requeued message is not turned away as busy until
    the lease lapses; True when it did."""
    key = lease_key(CLAIM, asset_id(asset["origin"]))
    return bool(guarded(lambda: client.eval(_RELEASE_DEAD, 1, key, holder(pid))))


def _ms(seconds: float) -> int:
    return max(0, int(seconds * 1000))


def _keys(batch: str) -> list[str]:
    return [f"{PREFIX}batch:{batch}:inflight", f"{PREFIX}batch:{batch}"]


def _json(asset: dict[str, Any]) -> str:
    return json.dumps(asset, separators=(",", ":"))


def keys_inflight(batch: str) -> str:
    return _keys(batch)[0]


class Inflight:
    """The in-flight entries of one worker's tasks (see the module's docstring)."""

    def __init__(self, claims: Claims, settings: Settings) -> None:
        self.claims = claims
        self.client = claims.client
        self.grace = settings.celery.claim_ttl
        self.ttl = _ms(settings.celery.batch_ttl)
        self._mark = self.client.register_script(_MARK)

    def mark(self, batch: str, asset: dict[str, Any], delay: float, mode: str = "set") -> str:
        """Set (or extend) the asset's deadline to ``delay`` seconds from now; returns its final
        status in the batch ("" when it has none)."""
        args: list[str | int] = [asset_id(asset["origin"]), _json(asset), _ms(delay), self.ttl,
                                 mode]
        return str(guarded(lambda: self._mark(keys=_keys(batch), args=args)) or "")

    @contextmanager
    def started(self, batch: str, asset: dict[str, Any]) -> Iterator[str]:
        """Around one delivery of ``asset``: yields the asset's final status when its batch has
        one already (the caller returns it without archiving), else "" with the entry marked
        and kept alive by the heartbeat. A retry (Celery's ``Retry``) leaves the entry due once
        its countdown has passed; a final status removes it (``Batches.report``)."""
        try:
            final = self.mark(batch, asset, self.grace)
        except ArchiverError as exc:  # Redis is down: the task copes; the heartbeat marks later
            log.warning("%s not marked in flight: %s", asset.get("origin"), exc.message)
            final = ""
        if final:
            yield final
            return
        name = f"inflight:{batch}:{asset_id(asset['origin'])}"
        self.claims.renewer.add(name, lambda: self.mark(batch, asset, self.grace, "extend"))
        try:
            yield ""
        except Retry as retry:
            self.claims.renewer.remove(name)
            self._after_retry(batch, asset, retry)
            raise
        finally:
            self.claims.renewer.remove(name)

    def _after_retry(self, batch: str, asset: dict[str, Any], retry: Retry) -> None:
        when = retry.when
        if isinstance(when, datetime):
            countdown = (when - datetime.now(UTC if when.tzinfo else None)).total_seconds()
        else:
            countdown = float(when or 0)
        try:
            self.mark(batch, asset, max(0.0, countdown) + self.grace)
        except ArchiverError as exc:  # Redis is down: the last heartbeat's deadline stands
            log.warning("in-flight deadline of %s not moved: %s", asset.get("origin"),
                        exc.message)


class Sweeper:
    """Publishes again the tasks of assets whose worker died (see the module's docstring)."""

    def __init__(self, client: redis.Redis, settings: Settings, app: Celery | None = None,
                 batch: str | None = None) -> None:
        self.client = client
        self.settings = settings
        self.app = app
        self.batch = batch  # None: every open batch (a worker); else this one (an enqueuer)
        self.hold = _ms(settings.celery.effective_visibility_timeout)
        self._sweep = client.register_script(_SWEEP)

    def batches(self) -> list[str]:
        if self.batch is not None:
            return [self.batch]
        return [str(b) for b in guarded(lambda: self.client.zrange(BATCHES, 0, -1))]

    def sweep(self) -> int:
        """One pass over the open batches; returns how many assets were published again."""
        republished = 0
        for batch in self.batches():
            keys, args = _keys(batch), [lease_key(CLAIM, ""), str(self.hold)]
            bodies = guarded(lambda: self._sweep(keys=keys, args=args))  # noqa: B023
            if bodies:
                assets = [Asset.from_dict(json.loads(body)) for body in bodies]
                log.warning("batch %s: %d assets lost with their worker, publishing again: %s",
                            batch, len(assets), ", ".join(a.origin for a in assets[:5]))
                self._publish(batch, assets)
                republished += len(assets)
            elif self.batch is None:
                self._close_if_done(batch)
        return republished

    def _publish(self, batch: str, assets: list[Asset]) -> None:
        from archiver.drivers.enqueue import send

        try:
            send(assets, self.settings, batch=batch, app=self.app)
        except Exception:
            # Not published: due again at once, for the next sweep (of any sweeper).
            pipe = self.client.pipeline()
            for asset in assets:
                pipe.hset(keys_inflight(batch), asset.id, f"0|{_json(asset.to_dict())}")
            guarded(pipe.execute)
            raise

    def _close_if_done(self, batch: str) -> None:
        """A batch with nothing in flight and every status in is no longer swept."""
        inflight, statuses = _keys(batch)
        pipe = self.client.pipeline()
        pipe.hlen(inflight)
        pipe.hlen(statuses)
        pipe.hget(f"{statuses}:meta", "total")
        pending, done, total = guarded(pipe.execute)
        if not pending and (total is None or int(done) >= int(total)):
            guarded(lambda: self.client.zrem(BATCHES, batch))


class SweeperThread:
    """``Sweeper.sweep`` every ``sweep_interval`` seconds (jittered) on a daemon thread, then
    the ``rescue`` of batches Redis lost (``journal.Rescue``), when given."""

    def __init__(self, sweeper: Sweeper, rescue: Rescue | None = None) -> None:
        self.sweeper = sweeper
        self.rescue = rescue
        self.interval = sweeper.settings.celery.sweep_interval
        self._stop = rescue.stop if rescue is not None else threading.Event()
        self._thread = threading.Thread(target=self._loop, name="sweeper", daemon=True)

    def start(self) -> SweeperThread:
        self._thread.start()
        return self

    def stop(self) -> None:
        self._stop.set()

    def _loop(self) -> None:
        while not self._stop.wait(self.interval * random.uniform(0.5, 1.0)):
            try:
                self.sweeper.sweep()
            except Exception as exc:  # Redis or the broker blinked: the next pass tries again
                log.warning("sweep failed: %s", exc)
            if self.rescue is not None:
                try:
                    self.rescue.sweep()
                except Exception as exc:  # the broker blinked while publishing: next round
                    log.warning("batch rescue failed: %s", exc)
