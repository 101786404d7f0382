"""enqueue publishes what ``Celery.send_task`` would: the same task messages on the wire (real
Redis, real kombu), only built from a template per task instead of Celery's per-message work."""

from __future__ import annotations

import base64
import json
from typing import Any

import redis

from archiver.drivers.enqueue import send
from archiver.drivers.fleet import store_identity
from archiver.drivers.tasks import make_app, queue_for, task_for
from archiver.models import Asset, Citation
from archiver.settings import load_settings

# What differs between two sends of one asset: the ids Celery and kombu draw per message.
DRAWN = ("id", "root_id", "correlation_id", "delivery_tag")


def wire(raw: str) -> dict[str, Any]:
    message = json.loads(raw)
    message["body"] = json.loads(base64.b64decode(message["body"]))
    for part in (message, message["headers"], message["properties"]):
        for name in DRAWN:
            if name in part:
                assert part[name], name
                part[name] = "<drawn>"
    return message


def test_messages_equal_celery_send_task_on_the_wire(redis_url: str) -> None:
    settings = load_settings(environ={"ARCHIVER_BROKER_URL": redis_url,
                                      "ARCHIVER_STORE_URL": "s3://bucket/prefix"})
    assets = [Asset(origin="http://zkres1.myzaker.com/a/1.jpg", kind="image",
                    proxies=("https://cors.zfour.workers.dev/?",),
                    urls=("https://cors.zfour.workers.dev/?http://zkres1.myzaker.com/a/1.jpg",),
                    citations=(Citation("zaker-1", ("img.src",), "2022-01-31T20:18:20Z"),)),
              Asset(origin="https://v.qq.com/x/page/v1.html", kind="video",
                    urls=("https://v.qq.com/x/page/v1.html",))]
    client = redis.Redis.from_url(redis_url, decode_responses=True)
    client.flushdb()
    store = store_identity(settings.store)
    with make_app(settings) as app:
        for asset in assets:
            app.send_task(task_for(asset.kind), args=(asset.to_dict(), "b1"),
                          kwargs={"store": store}, queue=queue_for(asset.kind, settings),
                          argsrepr=asset.id, kwargsrepr="")
        celery_sent = {q: [wire(m) for m in client.lrange(q, 0, -1)]
                       for q in ("media", "video")}
        client.flushdb()
        assert send(assets, settings, batch="b1", app=app) == {"media": 1, "video": 1}
        ours = {q: [wire(m) for m in client.lrange(q, 0, -1)] for q in ("media", "video")}
    assert ours == celery_sent
    assert ours["media"][0]["headers"]["argsrepr"] == assets[0].id
    assert ours["video"][0]["headers"]["task"] == "archiver.archive_video"
    client.close()
