"""moto's S3 server, counting every request it serves: ``python -m bench.s3server -p PORT``.

The benchmarks count S3 requests where they cost, at the server, so that retries, HEADs and
listings made by any client (archiver, ``aws s3 sync``) are all seen. Requests are counted by
method and by what the key names (``media/``, ``manifest/assets/``, ...); ``GET /__requests``
returns the counts as JSON and ``POST /__requests/reset`` clears them. Both are answered by
this wrapper, never passed to moto.
"""

from __future__ import annotations

import argparse
import json
import threading
from collections import Counter
from collections.abc import Callable, Iterable
from typing import Any
from urllib.request import Request, urlopen

STATS_PATH = "/__requests"

# What a key is about, by the first of these markers in it (keys carry the store's prefix).
_CATEGORIES = (
    ("/media/", "media"),
    ("/manifest/assets/", "records"),
    ("/manifest/segments/", "records"),
    ("/manifest/changed/", "markers"),
    ("/manifest/articles/", "articles"),
    ("/manifest/", "manifest"),
)


def category(method: str, path: str, query: str) -> str:
    """``media``, ``records``, ``markers``, ``articles``, ``manifest``, ``list``, ``bucket``
    or ``other`` (a key outside archiver's layout: the baselines' files)."""
    key = path.split("/", 2)[2] if path.count("/") >= 2 else ""
    if not key:
        return "list" if method == "GET" and "list-type" in query else "bucket"
    for marker, name in _CATEGORIES:
        if marker in "/" + key:
            return name
    return "other"


class Counting:
    """WSGI middleware: counts each request by (method, category), answers STATS_PATH."""

    def __init__(self, app: Callable[..., Iterable[bytes]]) -> None:
        self.app = app
        self.lock = threading.Lock()
        self.counts: Counter[str] = Counter()

    def __call__(self, environ: dict[str, Any],
                 start_response: Callable[..., Any]) -> Iterable[bytes]:
        path = environ.get("PATH_INFO", "")
        method = environ.get("REQUEST_METHOD", "GET")
        if path.startswith(STATS_PATH):
            with self.lock:
                if path.endswith("/reset"):
                    self.counts.clear()
                body = json.dumps(self.counts).encode()
            start_response("200 OK", [("Content-Type", "application/json"),
                                      ("Content-Length", str(len(body)))])
            return [body]
        name = category(method, path, environ.get("QUERY_STRING", ""))
        with self.lock:
            self.counts[f"{method} {name}"] += 1
        return self.app(environ, start_response)


def requests_seen(endpoint: str, reset: bool = False) -> Counter[str]:
    """The counts of the server at ``endpoint`` (then cleared, with ``reset``)."""
    url = endpoint.rstrip("/") + STATS_PATH + ("/reset" if reset else "")
    with urlopen(Request(url, method="POST" if reset else "GET"), timeout=30) as resp:
        return Counter(json.loads(resp.read()))


def main(argv: list[str] | None = None) -> None:
    from moto.moto_server.werkzeug_app import (
        DomainDispatcherApplication,
        MotoRequestHandler,
        create_backend_app,
    )
    from werkzeug.serving import run_simple

    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("-H", "--host", default="127.0.0.1")
    parser.add_argument("-p", "--port", type=int, required=True)
    args = parser.parse_args(argv)
    app = Counting(DomainDispatcherApplication(create_backend_app))
    run_simple(args.host, args.port, app, threaded=True, request_handler=MotoRequestHandler)


if __name__ == "__main__":
    main()
