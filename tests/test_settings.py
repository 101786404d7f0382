"""Settings: the documented file equals the defaults; environment and file precedence."""

from __future__ import annotations

from pathlib import Path

import pytest

from archiver.errors import ConfigError
from archiver.settings import EffectiveRule, FetchSettings, Settings, host_matches, load_settings

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


P = "http://proxy.internal:3128"
# The example: a specific rule that sets only a cap, then a catch-all that sets the rest.
RULES = FetchSettings.model_validate({
    "per_host_concurrency": 4,
    "egress_proxy": "socks5://global:1080",
    "hosts": [
        {"pattern": "*.myzaker.com", "max_concurrency": 1},
        {"pattern": "static.*", "routes": ["mirror"], "egress_proxy": None},
        {"pattern": "*", "routes": ["proxy"], "egress_proxy": P, "rate": 2},
    ],
})
DEFAULTS = ("direct", "proxy", "mirror", "wayback", "alternate")


@pytest.mark.parametrize(("host", "rule"), [
    # First match wins per field: the cap from the first rule, the rest from the catch-all.
    ("zkres1.myzaker.com", EffectiveRule(("proxy",), 1, 2, P)),
    ("ZKRES1.MyZaker.com.", EffectiveRule(("proxy",), 1, 2, P)),
    # A field a matching rule leaves unset (None) goes on to the next rule.
    ("static.cnbetacdn.com", EffectiveRule(("mirror",), 4, 2, P)),
    ("example.org", EffectiveRule(("proxy",), 4, 2, P)),
])
def test_rule_for_takes_each_field_from_the_first_matching_rule_that_sets_it(
        host: str, rule: EffectiveRule) -> None:
    assert RULES.rule_for(host) == rule


def test_rule_for_falls_back_to_the_section_defaults() -> None:
    fs = FetchSettings.model_validate({
        "per_host_concurrency": 3, "egress_proxy": P,
        "hosts": [{"pattern": "*.myzaker.com", "max_concurrency": 1, "rate": 5}],
    })
    assert fs.rule_for("zkres1.myzaker.com") == EffectiveRule(DEFAULTS, 1, 5, P)
    assert fs.rule_for("myzaker.com") == EffectiveRule(DEFAULTS, 3, None, P)
    assert FetchSettings().rule_for("a.example") == EffectiveRule(DEFAULTS, 4, None, None)


@pytest.mark.parametrize(("host", "pattern", "expected"), [
    ("a.example.com", "a.example.com", True),
    ("A.Example.COM.", "a.example.com", True),
    ("b.example.com", "a.example.com", False),
    ("a.b.example.com", "*.example.com", True),
    ("example.com", "*.example.com", False),
    ("notexample.com", "*.example.com", False),
    ("i2.wp.com", "i?.wp.com", True),
    ("img3.cdn.example", "img[0-9].cdn.*", True),
    ("anything", "*", True),
])
def test_host_matches(host: str, pattern: str, expected: bool) -> None:
    assert host_matches(host, pattern) is expected
