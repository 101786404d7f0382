"""The ``archiver`` click group and what every command shares (settings, output, exit codes)."""

from __future__ import annotations

import gc
import importlib
import sys
from collections.abc import Sequence
from typing import Any

import click

from archiver import __version__
from archiver.cli.options import FilePath
from archiver.errors import ArchiverError
from archiver.settings import Settings, load_settings

# Each command and the module that adds it to ``cli``: a run imports only its command's module
# (``archive`` needs none of rewrite's, export's or the queue's code), help lists import them all.
COMMANDS = {
    "scan": "archiver.cli.scan",
    "archive": "archiver.cli.archive", "manifest": "archiver.cli.archive",
    "verify": "archiver.cli.archive",
    "enqueue": "archiver.cli.queue", "status": "archiver.cli.queue",
    "worker": "archiver.cli.worker",
    "rewrite": "archiver.cli.rewrite",
    "export": "archiver.cli.export",
    "config": "archiver.cli.config",
    "report": "archiver.cli.report",
}
COMMAND_MODULES = tuple(dict.fromkeys(COMMANDS.values()))


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


class ArchiverGroup(click.Group):
    """The group that turns every archiver error and usage error into one line on stderr and
    its exit code (2 for usage and configuration), whichever command raised it. A command's
    module is imported when the command is looked up (``COMMANDS``)."""

    def get_command(self, ctx: click.Context, cmd_name: str) -> click.Command | None:
        module = COMMANDS.get(cmd_name)
        if module is not None and cmd_name not in self.commands:
            importlib.import_module(module)
        return super().get_command(ctx, cmd_name)

    def list_commands(self, ctx: click.Context) -> list[str]:
        load_commands()
        return super().list_commands(ctx)

    def invoke(self, ctx: click.Context) -> Any:
        try:
            return super().invoke(ctx)
        except ArchiverError as exc:
            raise fail(exc) from exc

    def main(self, args: Sequence[str] | None = None, prog_name: str | None = None,
             complete_var: str | None = None, standalone_mode: bool = True,
             **extra: Any) -> Any:
        if not standalone_mode:
            return super().main(args, prog_name, complete_var, False, **extra)
        try:
            code = super().main(args, prog_name, complete_var, False, **extra)
        except click.ClickException as exc:
            click.echo(f"archiver: error: {usage_line(exc)}", err=True)
            sys.exit(exc.exit_code)
        except click.Abort:
            click.echo("Aborted!", err=True)
            sys.exit(1)
        sys.exit(code if isinstance(code, int) else 0)


def one_line(text: str) -> str:
    """``text`` with every unprintable character escaped (a path or value can hold newlines,
    NEL or other separators), so an error stays on one line."""
    return "".join(c if c.isprintable() else repr(c)[1:-1] for c in text)


def usage_line(exc: click.ClickException) -> str:
    """A click error in one line, pointing at the command's help."""
    line = one_line(" ".join(exc.format_message().split()))
    ctx = getattr(exc, "ctx", None)
    if isinstance(exc, click.UsageError) and ctx is not None:
        line += f" (see '{ctx.command_path} --help')"
    return line


@click.group(cls=ArchiverGroup, context_settings={"help_option_names": ["-h", "--help"]})
@click.version_option(__version__, prog_name="archiver")
@click.option("--config", "config", type=FilePath(dir_okay=False), default=None,
              envvar="ARCHIVER_CONFIG", help="TOML settings file (default: config/archiver.toml "
              "when present).")
@click.pass_context
def cli(ctx: click.Context, config: str | None) -> None:
    """Preserve the images, GIFs and videos that articles reference."""
    ctx.obj = State(config)


def fail(error: ArchiverError) -> click.exceptions.Exit:
    """Print an archiver error on stderr and turn it into the process exit code."""
    click.echo(f"archiver: error: {error.code}: {one_line(error.message)}", err=True)
    return click.exceptions.Exit(error.exit_code)


def load_commands() -> click.Group:
    """Import every command module (each registers its commands on ``cli``); returns ``cli``."""
    for module in COMMAND_MODULES:
        importlib.import_module(module)
    return cli


def main(argv: list[str] | None = None) -> Any:
    """The command line: ``argv``, else the process's own (then the process ends here)."""
    try:
        return cli.main(args=argv, prog_name="archiver")
    finally:
        if argv is None:
            # What is left is freed by the exit itself: the interpreter's shutdown would walk
            # it with the cyclic collector first (S3's client alone is ~25,000 objects in
            # cycles), 0.1-0.25 s of every run. Stores, files and pools are closed by now,
            # by the ``with`` blocks that opened them.
            gc.freeze()
