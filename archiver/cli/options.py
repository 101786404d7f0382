"""Options shared by the commands that fetch or plan: store, host overrides, SSRF allowlist."""

from __future__ import annotations

import json
from collections.abc import Callable, Iterable
from typing import Any, TypeVar

import click

from archiver.models import ArticleScan
from archiver.settings import Settings

F = TypeVar("F", bound=Callable[..., Any])


def format_option(func: F) -> F:
    """``--format table|jsonl``: for people (default) or one JSON object per line."""
    return click.option("--format", "fmt", type=click.Choice(["table", "jsonl"]),
                        default="table", show_default=True,
                        help="table for people, jsonl for scripts.")(func)


class Seconds(click.ParamType):  # type: ignore[type-arg]  # generic only in newer click
    """A duration in seconds: a finite number > 0 (the rule timeouts follow in settings)."""

    name = "seconds"

    def convert(self, value: Any, param: click.Parameter | None,
                ctx: click.Context | None) -> float:
        try:
            seconds = float(value)
        except (TypeError, ValueError):
            self.fail(f"{value!r} is not a number of seconds", param, ctx)
        if not 0 < seconds < float("inf"):
            self.fail(f"{value!r}: must be > 0 and finite", param, ctx)
        return seconds


class FilePath(click.Path):
    """``click.Path`` that refuses a path with a NUL character as a usage error (click's own
    checks call ``os.stat``, which raises ValueError for one: a traceback, not a message)."""

    def convert(self, value: Any, param: click.Parameter | None,
                ctx: click.Context | None) -> Any:
        if "\0" in str(value):
            self.fail(f"{value!r}: a path cannot hold a NUL character", param, ctx)
        return super().convert(value, param, ctx)


# Control characters (C0, DEL, C1) and the Unicode line and paragraph separators: a file named
# "a\nb.md" or a value as an article wrote it must not start a line of its own in a table.
_CONTROLS = {c: f"\\x{c:02x}" if c < 0x100 else f"\\u{c:04x}"
             for c in (*range(0x20), *range(0x7f, 0xa0), 0x2028, 0x2029)}


def shown(text: str) -> str:
    """``text`` for one line of a table: its control characters escaped (``\\x0a``)."""
    return text.translate(_CONTROLS) if not text.isprintable() else text


def echo_json(obj: Any) -> None:
    """One JSON line on stdout (UTF-8 as is, keys sorted)."""
    click.echo(json.dumps(obj, ensure_ascii=False, sort_keys=True))


def echo_warnings(scans: Iterable[ArticleScan]) -> None:
    """Each article's scan warnings, one line each on stderr."""
    for scan in scans:
        for warning in scan.warnings:
            click.echo(f"archiver: warning: {shown(scan.article)}: {shown(warning)}", err=True)


def store_options(func: F) -> F:
    """``--store URL``: a directory path or ``s3://bucket/prefix`` (default from settings)."""
    return click.option(
        "--store", "store_url", default=None, metavar="URL",
        help="Where to archive: a directory (default ./archive) or s3://bucket/prefix.",
    )(func)


def fetch_options(func: F) -> F:
    """``--connect-to`` and ``--allow-private``, added to the configured lists."""
    func = click.option(
        "--allow-private", "allow_private", multiple=True, metavar="CIDR",
        help="Let the SSRF guard connect to this non-public network (repeatable).",
    )(func)
    func = click.option(
        "--connect-to", "connect_to", multiple=True, metavar="HOST:PORT:TARGET:TPORT",
        help="Send connections for HOST:PORT to TARGET:TPORT, keeping URL and Host (curl syntax, "
        "repeatable).",
    )(func)
    return func


def apply_options(
    settings: Settings,
    *,
    store_url: str | None = None,
    connect_to: tuple[str, ...] = (),
    allow_private: tuple[str, ...] = (),
    concurrency: int | None = None,
) -> Settings:
    """The settings with command-line options laid over them, checked by the same rules as
    the file and the environment (a bad value is a ConfigError naming its option)."""
    fetch: dict[str, Any] = {}
    if connect_to:
        fetch["connect_to"] = [*settings.fetch.connect_to, *connect_to]
    if allow_private:
        fetch["allow_private"] = [*settings.fetch.allow_private, *allow_private]
    return settings.with_overrides(
        OPTION_NAMES,
        fetch=fetch,
        store={"url": store_url},
        runner={"concurrency": concurrency},
    )


# The settings field each option sets, for messages that name the option.
OPTION_NAMES = {
    ("fetch", "connect_to"): "--connect-to",
    ("fetch", "allow_private"): "--allow-private",
    ("store", "url"): "--store",
    ("runner", "concurrency"): "--concurrency",
}
