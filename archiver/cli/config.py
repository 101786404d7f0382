"""``archiver config``: the settings every command would use, after file, environment and
options (a bad value is reported in one line naming its source, exit 2)."""

from __future__ import annotations

import json

import click

from archiver.cli.app import State, cli
from archiver.cli.options import (
    apply_options,
    echo_json,
    fetch_options,
    format_option,
    store_options,
)


@cli.command("config")
@store_options
@fetch_options
@click.option("--concurrency", "-j", type=int, default=None,
              help="As for archive: assets archived at once.")
@format_option
@click.pass_obj
def config(state: State, store_url: str | None, connect_to: tuple[str, ...],
           allow_private: tuple[str, ...], concurrency: int | None, fmt: str) -> None:
    """Print the effective settings (defaults < config file < ARCHIVER_* < options)."""
    settings = apply_options(state.settings, store_url=store_url, connect_to=connect_to,
                             allow_private=allow_private, concurrency=concurrency)
    data = settings.model_dump(mode="json")
    if fmt == "jsonl":
        echo_json(data)
        return
    for section, fields in data.items():
        for name, value in fields.items():
            click.echo(f"{section}.{name} = {json.dumps(value, ensure_ascii=False)}")
