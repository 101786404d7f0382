"""Settings: the documented file equals the defaults; environment and file precedence."""

from __future__ import annotations

from pathlib import Path

import pytest

from archiver.errors import ConfigError
from archiver.settings import Settings, load_settings

CONFIG = Path(__file__).resolve().parents[1] / "config" / "archiver.toml"


def test_documented_config_is_the_defaults() -> None:
    assert load_settings(CONFIG, environ={}) == Settings()


def test_every_field_is_documented() -> None:
    text = CONFIG.read_text(encoding="utf-8")
    for section, model in Settings().model_dump().items():
        assert f"[{section}]" in text
        for field in model:
            documented = f"{field} =" in text or f"[[{section}.{field}]]" in text
            assert documented, f"{section}.{field} is not in config/archiver.toml"


def test_environment_overrides_file(tmp_path: Path) -> None:
    path = tmp_path / "a.toml"
    path.write_text('[fetch]\nretries = 1\n[store]\nurl = "s3://b/p"\n', encoding="utf-8")
    env = {
        "ARCHIVER_FETCH__RETRIES": "7",
        "ARCHIVER_BROKER_URL": "redis://h:1/2",
        "ARCHIVER_FETCH__ALLOW_PRIVATE": '["127.0.0.0/8"]',
        "ARCHIVER_FETCH__USER_AGENT": "x/1",
        "UNRELATED": "1",
    }
    s = load_settings(path, environ=env)
    assert s.fetch.retries == 7
    assert s.store.url == "s3://b/p"
    assert s.celery.broker_url == "redis://h:1/2"
    assert s.fetch.allow_private == ["127.0.0.0/8"]
    assert s.fetch.user_agent == "x/1"


def test_config_from_environment_variable(tmp_path: Path) -> None:
    path = tmp_path / "b.toml"
    path.write_text("[runner]\nconcurrency = 3\n", encoding="utf-8")
    assert load_settings(environ={"ARCHIVER_CONFIG": str(path)}).runner.concurrency == 3


@pytest.mark.parametrize(
    ("content", "env"),
    [
        ("[fetch]\nretries = 'many'\n", {}),
        ("[nosuch]\nx = 1\n", {}),
        ("[fetch\n", {}),
        ("", {"ARCHIVER_FETCH__NOSUCH": "1"}),
        ("", {"ARCHIVER_CELERY__VISIBILITY_TIMEOUT": "10"}),
    ],
)
def test_bad_settings_are_config_errors(tmp_path: Path, content: str, env: dict[str, str]) -> None:
    path = tmp_path / "c.toml"
    path.write_text(content, encoding="utf-8")
    with pytest.raises(ConfigError) as info:
        load_settings(path, environ=env)
    assert info.value.exit_code == 2


def test_missing_config_file_is_an_error(tmp_path: Path) -> None:
    with pytest.raises(ConfigError, match="not found"):
        load_settings(tmp_path / "nope.toml", environ={})
