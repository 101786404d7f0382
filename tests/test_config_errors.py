"""No traceback for any value: every ARCHIVER_* variable and every option, given random text,
either works or ends in one line on stderr with exit 2; the same rule holds whatever the source."""

from __future__ import annotations

import subprocess
import sys
import tempfile
from pathlib import Path

import click
import pytest
from click.testing import CliRunner, Result
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from archiver.cli.app import load_commands
from archiver.cli.options import OPTION_NAMES
from archiver.settings import NOT_SETTINGS, env_variables

cli = load_commands()
# Values shaped like what people type, plus anything at all.
VALUES = st.one_of(
    st.text(max_size=40),
    st.sampled_from(["0", "-1", "1", "99999", "nan", "inf", "-inf", "1e309", "true", "[]",
                     "{}", '["x"]', '[{"pattern": 1}]', "notaurl", "http://", "http://[::1",
                     "redis://h:99999/0", "s3://", "s3://b/p", "a:1:b:99999", "::", "300.1.1.1/8"]),
    st.integers(min_value=-10**6, max_value=10**6).map(str),
    st.floats(allow_nan=True, allow_infinity=True).map(str),
)


def one_line_or_ok(result: Result) -> None:
    assert result.exception is None or isinstance(result.exception, SystemExit), result.exception
    assert "Traceback" not in result.output
    if result.exit_code != 0:
        assert result.exit_code == 2, result.output
        lines = result.stderr.splitlines()
        assert len(lines) == 1 and lines[0].startswith("archiver: error: "), lines


def _value_options() -> list[tuple[tuple[str, ...], str]]:
    """Every option that takes a value, of every command, as (command path, option)."""
    found: list[tuple[tuple[str, ...], str]] = []

    def walk(command: click.Command, path: tuple[str, ...]) -> None:
        if isinstance(command, click.Group):
            for name, sub in command.commands.items():
                walk(sub, (*path, name))
            return
        for param in command.params:
            if isinstance(param, click.Option) and not param.is_flag and param.opts[0] != "--help":
                found.append((path, param.opts[0]))

    walk(cli, ())
    return found


@settings(max_examples=600, deadline=None, suppress_health_check=[HealthCheck.too_slow])
@given(name=st.sampled_from(sorted([*env_variables(), *NOT_SETTINGS])), value=VALUES)
def test_any_value_of_any_variable(name: str, value: str) -> None:
    if "\x00" in value:  # an environment cannot hold NUL
        return
    result = CliRunner().invoke(cli, ["config"], env={name: value}, prog_name="archiver")
    one_line_or_ok(result)
    if result.exit_code == 2 and name not in NOT_SETTINGS:
        assert result.stderr.startswith(f"archiver: error: config: {name}")


@settings(max_examples=200, deadline=None, suppress_health_check=[HealthCheck.too_slow])
@given(option=st.sampled_from(sorted(set(OPTION_NAMES.values()))), value=VALUES)
def test_any_value_of_any_settings_option(option: str, value: str) -> None:
    result = CliRunner().invoke(cli, ["config", option, value], prog_name="archiver")
    one_line_or_ok(result)
    if result.exit_code == 2:
        assert option in result.stderr  # as a settings rule or as click's type check


@settings(max_examples=300, deadline=None, suppress_health_check=[HealthCheck.too_slow])
@given(target=st.sampled_from(_value_options()), value=VALUES)
def test_any_value_of_any_command_option_parses_or_is_a_usage_error(
        target: tuple[tuple[str, ...], str], value: str) -> None:
    """Parsing (types, ranges) fails only with click's errors, which the group prints in one
    line (test_a_usage_error_is_one_line); the values that feed settings are checked above."""
    path, option = target
    command: click.Command = cli
    ctx = cli.make_context("archiver", [], resilient_parsing=True)
    for name in path:
        assert isinstance(command, click.Group)
        command = command.commands[name]
    try:
        command.make_context(path[-1], [option, value, "x", "y"], parent=ctx)
    except click.ClickException:
        pass


@pytest.mark.parametrize("args", [
    ["rewrite", "--out", "o\0ut", "x"],
    ["--config", "a\0.toml", "scan", "x"],
    ["export", "warc", "a\0.warc.gz"],
    ["export", "wacz", "a\0.wacz"],
    ["report", "r\0.html"],
])
def test_a_path_with_a_nul_character_is_a_usage_error(args: list[str]) -> None:
    """click's path checks raise ValueError for a NUL (os.stat's "embedded null byte"): found
    by the fuzz test above, as a traceback where a usage error belongs."""
    result = CliRunner().invoke(cli, args, prog_name="archiver")
    assert result.exit_code == 2, result.output
    (line,) = result.stderr.splitlines()
    assert line.startswith("archiver: error: Invalid value") and "NUL character" in line


def test_a_usage_error_is_one_line() -> None:
    result = CliRunner().invoke(cli, ["enqueue", "--timeout", "nan", "x"], prog_name="archiver")
    assert result.exit_code == 2
    assert result.stderr.splitlines() == [
        "archiver: error: Invalid value for '--timeout': 'nan': must be > 0 and finite (see "
        "'archiver enqueue --help')"]


@pytest.mark.parametrize(("env", "args", "line"), [
    ({"ARCHIVER_BROKER_URL": "notaurl"}, ["status"],
     "archiver: error: config: ARCHIVER_BROKER_URL: not a URL (expected redis|rediss|unix://HOST"
     "[:PORT]/...)"),
    ({"ARCHIVER_S3_ENDPOINT_URL": "notaurl"}, ["archive", "x", "--store", "s3://b/p"],
     "archiver: error: config: ARCHIVER_S3_ENDPOINT_URL: not a URL (expected http|https://HOST"
     "[:PORT]/...)"),
    ({"ARCHIVER_FETCH__RETIRES": "5"}, ["status"],
     "archiver: error: config: ARCHIVER_FETCH__RETIRES: unknown setting (did you mean "
     "ARCHIVER_FETCH__RETRIES?)"),
    ({"ARCHIVER_CONCURRENCY": "0"}, ["archive", "x"],
     "archiver: error: config: ARCHIVER_CONCURRENCY: must be ≥ 1"),
    ({}, ["archive", "x", "--concurrency", "0"],
     "archiver: error: config: --concurrency: must be ≥ 1"),
    ({}, ["archive", "x", "--connect-to", "a:80:b:99999"],
     "archiver: error: config: --connect-to: 'a:80:b:99999': port 99999 is not in 1-65535"),
])
def test_real_process_one_line_exit_2(env: dict[str, str], args: list[str], line: str,
                                     tmp_path: Path) -> None:
    """The commands of the issue, as a user runs them: a process, its stderr, its exit code."""
    run = subprocess.run([sys.executable, "-m", "archiver", *args], cwd=tmp_path,
                         env={"PATH": "/usr/bin:/bin", **env}, capture_output=True, text=True,
                         timeout=60)
    assert run.returncode == 2, run.stderr
    assert run.stderr.splitlines() == [line]
    assert run.stdout == ""


@pytest.mark.parametrize(("source", "text"), [
    ("file", "[fetch]\nretries = -1\n"),
    ("env", "ARCHIVER_FETCH__RETRIES=-1"),
    ("file", "[runner]\nconcurrency = 0\n"),
    ("env", "ARCHIVER_CONCURRENCY=0"),
    ("file", "[fetch]\nconnect_timeout = -1\n"),
    ("env", "ARCHIVER_FETCH__CONNECT_TIMEOUT=0"),
    ("file", '[fetch]\nconnect_to = ["a:1:b:99999"]\n'),
    ("env", 'ARCHIVER_FETCH__CONNECT_TO=["a:1:b:0"]'),
    ("file", '[celery]\nbroker_url = "notaurl"\n'),
    ("file", "[fetch]\nretires = 1\n"),
])
def test_file_and_environment_follow_the_same_rules(source: str, text: str,
                                                    tmp_path: Path) -> None:
    config = tmp_path / "archiver.toml"
    env: dict[str, str] = {}
    if source == "file":
        config.write_text(text, encoding="utf-8")
    else:
        config.write_text("", encoding="utf-8")
        name, _, value = text.partition("=")
        env[name] = value
    result = CliRunner().invoke(cli, ["--config", str(config), "config"], env=env,
                                prog_name="archiver")
    assert result.exit_code == 2
    message = result.stderr.strip()
    assert message.startswith(f"archiver: error: config: {config if source == 'file' else name}")
    if "retires" in text:
        assert message.endswith("fetch.retires: unknown setting (did you mean fetch.retries?)")


def test_not_settings_are_known() -> None:
    assert set(NOT_SETTINGS) == {"ARCHIVER_CONFIG"}


@settings(max_examples=100, deadline=None, suppress_health_check=[HealthCheck.too_slow])
@given(value=VALUES, as_option=st.booleans())
def test_any_config_path(value: str, as_option: bool) -> None:
    if "\x00" in value:  # neither a command line nor an environment can hold NUL
        return
    args = ["--config", value, "config"] if as_option else ["config"]
    env = {} if as_option else {"ARCHIVER_CONFIG": value}
    one_line_or_ok(CliRunner().invoke(cli, args, env=env, prog_name="archiver"))


@settings(max_examples=100, deadline=None, suppress_health_check=[HealthCheck.too_slow])
@given(value=VALUES)
def test_any_base_url_for_rewrite(value: str) -> None:
    """A command option checked where the command uses it (rewrite's --base-url)."""
    article = Path(__file__).parent / "fixtures" / "articles" / "markdown.md"
    with tempfile.TemporaryDirectory() as store:
        result = CliRunner().invoke(cli, ["rewrite", str(article), "--base-url", value,
                                          "--dry-run", "--store", store],
                                    prog_name="archiver")
    assert result.exception is None or isinstance(result.exception, SystemExit), result.exception
    assert result.exit_code in (0, 1, 2) and "Traceback" not in result.output
    if result.exit_code == 2:
        assert len(result.stderr.splitlines()) == 1
