"""The ``archiver`` click group and what every command shares (settings, output, exit codes)."""

from __future__ import annotations

import importlib
from typing import Any

import click

from archiver import __version__
from archiver.errors import ArchiverError
from archiver.settings import Settings, load_settings

# Command modules, each adding its commands to ``cli``; imported lazily by ``main``.
COMMAND_MODULES = ("archiver.cli.scan", "archiver.cli.archive", "archiver.cli.queue",
                   "archiver.cli.rewrite", "archiver.cli.export")


class State:
    """What the group hands to every command: the loaded settings."""

    def __init__(self, config: str | None) -> None:
        self.config = config
        self._settings: Settings | None = None

    @property
    def settings(self) -> Settings:
        if self._settings is None:
            self._settings = load_settings(self.config)
        return self._settings


@click.group(context_settings={"help_option_names": ["-h", "--help"]})
@click.version_option(__version__, prog_name="archiver")
@click.option("--config", "config", type=click.Path(dir_okay=False), default=None,
              envvar="ARCHIVER_CONFIG", help="TOML settings file (default: config/archiver.toml "
              "when present).")
@click.pass_context
def cli(ctx: click.Context, config: str | None) -> None:
    """Preserve the images, GIFs and videos that articles reference."""
    ctx.obj = State(config)


def fail(error: ArchiverError) -> click.exceptions.Exit:
    """Print an archiver error on stderr and turn it into the process exit code."""
    click.echo(f"archiver: error: {error.code}: {error.message}", err=True)
    return click.exceptions.Exit(error.exit_code)


def load_commands() -> click.Group:
    """Import every command module (each registers its commands on ``cli``); returns ``cli``."""
    for module in COMMAND_MODULES:
        importlib.import_module(module)
    return cli


def main(argv: list[str] | None = None) -> Any:
    return load_commands().main(args=argv, prog_name="archiver")
