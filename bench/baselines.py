"""What a user would do instead of archiver, on the same URL list and the same local internet.

- ``naive_sequential``: one httpx GET, then one boto3 ``put_object`` (or a file write), one
  asset at a time: the script everyone writes first. It gets keep-alive for free (one Client).
- ``wget_sync``: ``wget -i urls.txt`` (or ``xargs -P N wget``) into a folder, then ``aws s3
  sync`` of that folder.
- ``gallery_dl_sync``: ``gallery-dl -i urls.txt`` (its direct-link extractor), then the sync.

The tools reach the fake public hosts through the local internet's forward-proxy mode
(``http_proxy``), which serves the same bytes with the same latency as ``--connect-to`` does for
archiver. Every function returns a Measurement with items = files stored, bytes = bytes stored.
"""

from __future__ import annotations

import hashlib
import os
import shutil
import sys
import tempfile
from collections.abc import Mapping, Sequence
from pathlib import Path
from typing import Any

from bench.measure import Measurement, combine, measure_call, measure_cmd


def tool(name: str) -> str | None:
    """A command from this interpreter's environment first (the ``bench`` extra), then PATH."""
    here = Path(sys.executable).parent / name
    return str(here) if here.exists() else shutil.which(name)


def _split_s3(url: str) -> tuple[str, str]:
    bucket, _, prefix = url.removeprefix("s3://").partition("/")
    return bucket, prefix.strip("/")


def _naive(urls: Sequence[str], proxy_url: str, dest: str, endpoint_url: str | None
           ) -> dict[str, int]:
    import boto3
    import httpx

    stored = failed = nbytes = 0
    s3: Any = None
    if dest.startswith("s3://"):
        bucket, prefix = _split_s3(dest)
        s3 = boto3.client("s3", endpoint_url=endpoint_url)
    with httpx.Client(proxy=proxy_url, timeout=120, follow_redirects=True) as client:
        for url in urls:
            try:
                response = client.get(url)
                response.raise_for_status()
            except httpx.HTTPError:
                failed += 1
                continue
            data = response.content
            name = hashlib.sha256(data).hexdigest() + Path(url.split("?")[0]).suffix[:6]
            if s3 is not None:
                s3.put_object(Bucket=bucket, Key=f"{prefix}/{name}".lstrip("/"), Body=data)
            else:
                Path(dest, name).write_bytes(data)
            stored += 1
            nbytes += len(data)
    return {"stored": stored, "failed": failed, "bytes": nbytes}


def naive_sequential(urls: Sequence[str], proxy_url: str, dest: str,
                     endpoint_url: str | None = None, label: str = "naive sequential"
                     ) -> Measurement:
    """httpx then boto3 (or a file write), one asset at a time, in a child process."""
    if not dest.startswith("s3://"):
        Path(dest).mkdir(parents=True, exist_ok=True)
    result, m = measure_call(label, _naive, list(urls), proxy_url, dest, endpoint_url)
    return m.with_counts(result["stored"], result["bytes"], failed=result["failed"])


def _tree_counts(root: Path) -> tuple[int, int]:
    files = [p for p in root.rglob("*") if p.is_file()]
    return len(files), sum(p.stat().st_size for p in files)


def _proxy_env(proxy_url: str, environ: Mapping[str, str] | None) -> dict[str, str]:
    env = dict(os.environ if environ is None else environ)
    env.update({"http_proxy": proxy_url, "HTTP_PROXY": proxy_url, "no_proxy": "",
                "NO_PROXY": ""})
    return env


def _sync(label: str, folder: Path, dest: str, endpoint_url: str | None,
          environ: Mapping[str, str] | None) -> Measurement | None:
    if not dest.startswith("s3://"):
        return None
    aws = tool("aws")
    if aws is None:
        raise RuntimeError("aws CLI not installed: pip install 'archiver[bench]'")
    argv = [aws, "s3", "sync", str(folder), dest.rstrip("/") + "/", "--only-show-errors"]
    if endpoint_url:
        argv += ["--endpoint-url", endpoint_url]
    env = dict(os.environ if environ is None else environ)
    return measure_cmd(f"{label}: aws s3 sync", argv, env=env)


def wget_sync(urls: Sequence[str], proxy_url: str, dest: str, endpoint_url: str | None = None,
              environ: Mapping[str, str] | None = None, label: str = "wget -i + aws s3 sync",
              parallel: int | None = None) -> Measurement:
    """``wget -i`` (sequential, keep-alive) into a temporary folder, then ``aws s3 sync`` to
    ``dest`` when it is an s3:// URL; for a directory ``dest`` wget writes there directly.
    ``parallel=N`` runs ``xargs -n 1 -P N wget`` instead: the parallel loop a user writes, one
    wget (and one connection) per URL, N at a time."""
    wget = shutil.which("wget")
    if wget is None:
        raise RuntimeError("wget is not installed (apt-get install -y wget)")
    work = Path(tempfile.mkdtemp(prefix="bench-wget-"))
    folder = work / "files" if dest.startswith("s3://") else Path(dest)
    try:
        (work / "urls.txt").write_text("\n".join(urls) + "\n")
        options = ["-q", "-x", "-P", str(folder), "--tries=2", "--timeout=120", "-e",
                   "use_proxy=on", "-e", "robots=off"]
        if parallel is None:
            argv = [wget, "-i", str(work / "urls.txt"), *options]
        else:
            argv = ["xargs", "-a", str(work / "urls.txt"), "-n", "1", "-P", str(parallel), wget,
                    *options]
        get = measure_cmd(f"{label}: wget", argv, env=_proxy_env(proxy_url, environ),
                          check=False)
        files, nbytes = _tree_counts(folder)
        sync = _sync(label, folder, dest, endpoint_url, environ)
        total = combine(label, get, sync) if sync else combine(label, get)
        return total.with_counts(files, nbytes, failed=len(urls) - files)
    finally:
        shutil.rmtree(work, ignore_errors=True)


def gallery_dl_sync(urls: Sequence[str], proxy_url: str, dest: str,
                    endpoint_url: str | None = None, environ: Mapping[str, str] | None = None,
                    label: str = "gallery-dl -i + aws s3 sync") -> Measurement | None:
    """gallery-dl with an input file (its ``directlink`` extractor takes plain media URLs),
    then ``aws s3 sync``; None when gallery-dl is not installed. URLs it refuses count as
    failed in ``extra``, they are not faked."""
    gdl = tool("gallery-dl")
    if gdl is None:
        return None
    work = Path(tempfile.mkdtemp(prefix="bench-gdl-"))
    folder = work / "files" if dest.startswith("s3://") else Path(dest)
    try:
        (work / "urls.txt").write_text("\n".join(urls) + "\n")
        argv = [gdl, "--quiet", "-i", str(work / "urls.txt"), "-d", str(folder),
                "--proxy", proxy_url, "--config-ignore", "-o", "downloader.http.retries=1",
                "-o", "extractor.archive=null"]
        get = measure_cmd(f"{label}: gallery-dl", argv, env=_proxy_env(proxy_url, environ),
                          check=False)
        files, nbytes = _tree_counts(folder)
        sync = _sync(label, folder, dest, endpoint_url, environ)
        total = combine(label, get, sync) if sync else combine(label, get)
        return total.with_counts(files, nbytes, failed=len(urls) - files,
                                 exit=get.extra.get("exit"))
    finally:
        shutil.rmtree(work, ignore_errors=True)
