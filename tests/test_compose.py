"""docker-compose.yml, read as Docker would: pinned images (none from Docker Hub's minio/*),
healthchecks on every long-running service, commands the CLI accepts, variables the settings
know, and an image that installs its locked dependencies (Docker itself does not run here)."""

from __future__ import annotations

import importlib
import re
import tomllib
from pathlib import Path
from typing import Any

import click
import pytest
import yaml
from packaging.requirements import Requirement

from archiver.cli.app import load_commands
from archiver.settings import NOT_SETTINGS, Settings, env_variables, load_settings

ROOT = Path(__file__).resolve().parents[1]
TEXT = (ROOT / "docker-compose.yml").read_text(encoding="utf-8")
COMPOSE: dict[str, Any] = yaml.safe_load(TEXT)
SERVICES: dict[str, dict[str, Any]] = COMPOSE["services"]
DOCKERFILE = (ROOT / "Dockerfile").read_text(encoding="utf-8")
LOCK = (ROOT / "requirements.lock").read_text(encoding="utf-8")
PROJECT_IMAGE = "archiver:latest"
DIGEST = re.compile(r"^[\w.\-/]+:[\w.\-]+@sha256:[0-9a-f]{64}$")


def interpolate(value: str) -> str:
    """Compose's substitution with every variable unset: ``${X:-default}`` -> default."""
    def sub(m: re.Match[str]) -> str:
        name, default = m.group(1), m.group(3)
        assert default is not None, f"${{{name}}} has no default"
        return default

    return re.sub(r"(?<!\$)\$\{(\w+)(:-([^}]*))?\}", sub, value).replace("$$", "$")


def argv_of(service: dict[str, Any]) -> list[str]:
    """The container's command line: entrypoint (the Dockerfile's ``archiver`` by default) plus
    command."""
    entry = service.get("entrypoint", ["archiver"] if service.get("image") == PROJECT_IMAGE else [])
    command = service.get("command", [])
    assert isinstance(entry, list) and isinstance(command, list), "exec form only"
    return [interpolate(str(a)) for a in [*entry, *command]]


def check_archiver_argv(args: list[str]) -> None:
    """Parse ``args`` through the click commands as ``archiver`` would, down to the leaf."""
    group: click.Command = load_commands()
    parent = group.make_context("archiver", [], resilient_parsing=True)
    while isinstance(group, click.Group):
        name, command, args = group.resolve_command(parent, args)
        assert command is not None and name is not None
        if isinstance(command, click.Group):
            parent = command.make_context(name, [], parent=parent, resilient_parsing=True)
        else:
            command.make_context(name, list(args), parent=parent)  # raises on a bad option
        group = command


def check_celery_argv(args: list[str]) -> None:
    """``celery -A MODULE ...``: the module imports and holds the Celery app."""
    start = 3 if args[:3] == ["python", "-m", "celery"] else 1
    assert args[start] == "-A", args
    module = importlib.import_module(args[start + 1])
    assert module.app.main == "archiver"


def test_images_are_pinned_and_none_from_docker_hub_minio() -> None:
    assert not re.search(r"(?<![\w./-])(docker\.io/)?minio/(minio|mc)\b", TEXT), \
        "Docker Hub no longer serves minio/*"
    for name, service in SERVICES.items():
        image = interpolate(service["image"])
        if image == PROJECT_IMAGE:
            assert "build" in service or name in ("flower",), name
            continue
        assert DIGEST.match(image), f"{name}: {image} is not pinned by tag and digest"
        assert not image.split("@")[0].endswith(":latest"), name
    assert interpolate(SERVICES["minio"]["image"]).startswith("quay.io/minio/minio:RELEASE.")
    assert interpolate(SERVICES["minio-init"]["image"]).startswith("quay.io/minio/mc:RELEASE.")


def test_every_long_running_service_has_a_healthcheck() -> None:
    for name, service in SERVICES.items():
        one_shot = service.get("restart") == "no"
        if not one_shot:
            assert "healthcheck" in service, f"{name} runs for long and has no healthcheck"
            assert service["healthcheck"]["test"][0] in ("CMD", "CMD-SHELL"), name


def test_every_command_exists_in_the_cli() -> None:
    checked = 0
    for service in SERVICES.values():
        argv = argv_of(service)
        if argv and argv[0] == "archiver":
            check_archiver_argv(argv[1:])
            checked += 1
        elif argv and "celery" in argv[:3]:
            check_celery_argv(argv)
            checked += 1
        test = service.get("healthcheck", {}).get("test", [])
        if test[:1] == ["CMD-SHELL"] and "celery" in test[1]:
            check_celery_argv(interpolate(test[1]).split())
    assert checked == 5  # two workers, enqueue, enqueue-status, flower


def test_workers_consume_the_configured_queues() -> None:
    queues = {Settings().celery.media_queue, Settings().celery.video_queue}
    for name in ("worker-media", "worker-video"):
        argv = argv_of(SERVICES[name])
        consumed = argv[argv.index("--queues") + 1].split(",")
        assert set(consumed) <= queues, name


def test_environment_names_are_settings() -> None:
    known = {*NOT_SETTINGS, *env_variables()}
    env = {k: interpolate(str(v)) for k, v in COMPOSE["x-archiver-env"].items()}
    archiver_env = {k: v for k, v in env.items() if k.startswith("ARCHIVER_")}
    assert set(archiver_env) <= known, set(archiver_env) - known
    settings = load_settings(environ=archiver_env)  # the values validate too
    assert settings.store.url.startswith("s3://") and settings.store.endpoint_url
    for name, service in SERVICES.items():
        if service.get("image") == PROJECT_IMAGE:
            assert service["environment"] == COMPOSE["x-archiver-env"], name


def test_image_installs_from_the_lock_without_ffmpeg_or_run_time_installs() -> None:
    assert re.search(r"pip install --require-hashes .*-r requirements.lock", DOCKERFILE)
    assert "--no-build-isolation" in DOCKERFILE  # the build needs nothing outside the lock
    assert "ffmpeg" not in DOCKERFILE.replace("No ffmpeg", "")
    assert re.search(r"^FROM \S+@sha256:[0-9a-f]{64}$", DOCKERFILE, re.M)
    assert "pip install" not in TEXT
    assert "flower" in SERVICES["flower"]["entrypoint"]


@pytest.mark.parametrize("extra", [None, "flower"])
def test_lock_pins_every_dependency_within_its_range(extra: str | None) -> None:
    project = tomllib.loads((ROOT / "pyproject.toml").read_text(encoding="utf-8"))["project"]
    wanted = project["dependencies"] if extra is None else project["optional-dependencies"][extra]
    pins = dict(re.findall(r"^([a-z0-9][a-z0-9._-]*)==(\S+)", LOCK, re.M))
    for line in wanted:
        requirement = Requirement(line)
        name = requirement.name.lower().replace("_", "-")
        assert name in pins, f"{name} is not in requirements.lock (run scripts/lock)"
        assert requirement.specifier.contains(pins[name]), f"{name}=={pins[name]} vs {line}"
    assert "--hash=sha256:" in LOCK
    assert "setuptools" in pins
