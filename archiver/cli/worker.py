"""``archiver worker``: a Celery worker process for archiver, with the CLI's options."""

from __future__ import annotations

import json
import os
import sys

import click

from archiver.cli.app import State, cli, fail
from archiver.cli.options import apply_options, fetch_options, store_options
from archiver.errors import ArchiverError


@cli.command()
@click.option("--queues", "-Q", default=None, metavar="LIST",
              help="Comma-separated queues to consume (default: media,video).")
@click.option("--concurrency", "-c", type=click.IntRange(1, 512), default=None,
              help="Child processes or threads (default: number of CPUs).")
@click.option("--pool", type=click.Choice(["prefork", "threads", "solo"]), default=None)
@click.option("--hostname", "-n", default=None, help="Node name, e.g. media1@%h.")
@click.option("--loglevel", "-l", default="INFO", show_default=True,
              type=click.Choice(["DEBUG", "INFO", "WARNING", "ERROR", "CRITICAL"],
                                case_sensitive=False))
@store_options
@fetch_options
@click.pass_obj
def worker(state: State, queues: str | None, concurrency: int | None, pool: str | None,
           hostname: str | None, loglevel: str, store_url: str | None,
           connect_to: tuple[str, ...], allow_private: tuple[str, ...]) -> None:
    """Start a Celery worker for archiver (same as ``celery -A archiver.drivers.tasks worker``)."""
    try:
        settings = apply_options(state.settings, store_url=store_url, connect_to=connect_to,
                                 allow_private=allow_private)
    except ArchiverError as exc:
        raise fail(exc) from exc
    argv = worker_argv(settings.celery.media_queue, settings.celery.video_queue, queues=queues,
                       concurrency=concurrency, pool=pool, hostname=hostname, loglevel=loglevel)
    env = dict(os.environ)
    if state.config:
        env["ARCHIVER_CONFIG"] = state.config
    # Options become the variables the worker's own load_settings() reads.
    if store_url:
        env["ARCHIVER_STORE_URL"] = store_url
    if connect_to:
        env["ARCHIVER_FETCH__CONNECT_TO"] = json.dumps(settings.fetch.connect_to)
    if allow_private:
        env["ARCHIVER_FETCH__ALLOW_PRIVATE"] = json.dumps(settings.fetch.allow_private)
    sys.stdout.flush()
    # exec, not a child: the worker owns the process, so signals reach Celery directly.
    os.execvpe(argv[0], argv, env)  # noqa: S606


def worker_argv(media_queue: str, video_queue: str, *, queues: str | None = None,
                concurrency: int | None = None, pool: str | None = None,
                hostname: str | None = None, loglevel: str = "INFO") -> list[str]:
    """The ``celery worker`` command line the ``worker`` command runs."""
    argv = [sys.executable, "-m", "celery", "-A", "archiver.drivers.tasks", "worker",
            "-Q", queues or f"{media_queue},{video_queue}", "--loglevel", loglevel]
    if concurrency:
        argv += ["--concurrency", str(concurrency)]
    if pool:
        argv += ["--pool", pool]
    if hostname:
        argv += ["-n", hostname]
    return argv
