"""Archive some assets at once in a fresh process and report its peak RSS.

``python -m tests.support.memory_probe SPEC`` where SPEC is JSON: ``settings`` (a Settings
dict), ``store`` (a store URL) and ``assets`` (``[origin, kind]`` pairs). Every asset runs in
its own thread through the real pipeline (fetch, decode, cap, sniff, facts, store, record);
the process prints one JSON object: each record's origin, status, error code and facts, and
``peak_rss_mb``, the whole process's peak resident set, interpreter included.
"""

from __future__ import annotations

import json
import sys
import warnings
from concurrent.futures import ThreadPoolExecutor

from archiver.models import Asset
from archiver.pipeline import archive_asset, build_context
from archiver.settings import Settings
from archiver.store import open_store
from bench.measure import vm_hwm


def main(spec_text: str) -> None:
    spec = json.loads(spec_text)
    settings = Settings.model_validate({**spec["settings"], "store": {"url": spec["store"]}})
    assets = [Asset(origin=origin, kind=kind) for origin, kind in spec["assets"]]
    # Pillow warns about bomb-sized headers; the facts code copes, the warning is noise here.
    warnings.simplefilter("ignore")
    with open_store(settings.store) as store, build_context(settings, store) as ctx, \
            ThreadPoolExecutor(max_workers=len(assets)) as pool:
        records = list(pool.map(lambda a: archive_asset(a, ctx), assets))
    out = {
        "records": [{"origin": r.origin, "status": r.status,
                     "code": (r.error or {}).get("code"), "width": r.width, "height": r.height,
                     "frames": r.frames, "size": r.size} for r in records],
        "peak_rss_mb": vm_hwm() / (1024 * 1024),  # not ru_maxrss: see vm_hwm
    }
    print(json.dumps(out))


if __name__ == "__main__":
    main(sys.argv[1])
