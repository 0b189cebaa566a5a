"""The container's settings: read once from the environment, validated together, secrets kept out of sight."""

from __future__ import annotations

import json
import logging
import re
import subprocess
import sys
from pathlib import Path

import pytest

from bridge_container import __main__ as entry
from bridge_container.exceptions import SettingsError
from bridge_container.settings import ConnectionsSettings, ContainerSettings, EnvVar, ServiceSettings

REPOSITORY_ROOT = Path(__file__).resolve().parents[3]
README = REPOSITORY_ROOT / "README.md"
TOKEN = "s3cr3t-admin-token-of-enough-length"
README_ROW = re.compile(r"^\| `(?P<name>BRIDGE_\w+)` \| (?P<default>[^|]+) \|", re.MULTILINE)


def _readme_defaults() -> dict[str, str]:
    return {row["name"]: row["default"].strip() for row in README_ROW.finditer(README.read_text(encoding="utf-8"))}


def test_a_bad_value_names_its_variable_and_shows_the_value() -> None:
    with pytest.raises(SettingsError) as raised:
        ContainerSettings.from_env({EnvVar.HTTP_PORT: "abc"})

    [issue] = raised.value.issues
    assert issue.path == "BRIDGE_HTTP_PORT"
    assert issue.message.startswith("Input should be a valid integer")
    assert issue.message.endswith("got 'abc'")
    assert "BRIDGE_HTTP_PORT: Input should be a valid integer" in str(raised.value)


def test_every_bad_value_is_reported_together() -> None:
    environ: dict[str, str] = {
        EnvVar.HTTP_PORT: "70000",
        EnvVar.DRAIN_DEADLINE_SECS: "-1",
        EnvVar.LOG_LEVEL: "loud",
        EnvVar.LIFT_RATE_LIMITS: "perhaps",
        EnvVar.CONNECTIONS_SYNC_SECS: "0",
    }

    with pytest.raises(SettingsError) as raised:
        ContainerSettings.from_env(environ)

    assert {issue.path for issue in raised.value.issues} == set(environ)
    assert "\n" not in str(raised.value)  # logged as one line


def test_an_explicit_argument_wins_over_the_environment_which_wins_over_the_default() -> None:
    environ: dict[str, str] = {EnvVar.HTTP_PORT: "9000", EnvVar.HTTP_HOST: "10.0.0.1"}

    settings = ContainerSettings.from_env(environ, port=9100, host=None).service

    assert (settings.port, settings.host, settings.drain_deadline_secs) == (9100, "10.0.0.1", 20.0)


def test_an_empty_variable_counts_as_unset() -> None:
    settings = ContainerSettings.from_env({EnvVar.HTTP_PORT: "", EnvVar.CONNECTIONS_TABLE: ""})

    assert (settings.service.port, settings.connections.table_name) == (8080, None)


def test_unknown_bridge_variables_are_ignored() -> None:
    # A connection file reads variables of its own choosing ({"env": NAME}): an unknown name may be a reference.
    environ = {"BRIDGE_SECRET_LNS_0_AS_KEY": "00112233445566778899aabbccddeeff", "BRIDGE_HTTP_PROT": "9000"}

    assert ContainerSettings.from_env(environ) == ContainerSettings.from_env({})


def test_an_unknown_explicit_setting_is_a_programming_error() -> None:
    with pytest.raises(TypeError, match="prot"):
        ContainerSettings.from_env({}, prot=9000)


def test_each_setting_is_read_from_the_variable_of_the_same_enum_member() -> None:
    read = ServiceSettings.variable_names() | ConnectionsSettings.variable_names()
    not_read = {EnvVar.CONNECTION_DOCUMENT, EnvVar.AWS_REGION, EnvVar.AWS_DEFAULT_REGION}

    assert read == {member.value for member in EnvVar} - not_read


def test_the_readme_documents_every_variable_the_settings_read() -> None:
    documented = set(_readme_defaults())
    read = ServiceSettings.variable_names() | ConnectionsSettings.variable_names()

    assert documented == {name for name in read if name.startswith("BRIDGE_")}  # ECS sets its own variable


def test_the_defaults_are_those_the_readme_documents() -> None:
    defaults = ContainerSettings.from_env({})
    for name, documented in _readme_defaults().items():
        if documented == "none":
            section = defaults.service if name in ServiceSettings.variable_names() else defaults.connections
            field = next(key for key, info in type(section).model_fields.items() if info.alias == name)
            assert getattr(section, field) is None, name
        elif documented.startswith("`"):
            # Setting the documented default explicitly changes nothing.
            assert ContainerSettings.from_env({name: documented.strip("`")}) == defaults, name


def test_the_admin_token_stays_out_of_reprs_and_errors() -> None:
    with pytest.raises(SettingsError) as raised:
        ContainerSettings.from_env({EnvVar.ADMIN_TOKEN: TOKEN, EnvVar.HTTP_PORT: "abc"})
    settings = ContainerSettings.from_env({EnvVar.ADMIN_TOKEN: TOKEN})

    assert TOKEN not in str(raised.value)
    assert TOKEN not in repr(settings)
    assert TOKEN not in settings.model_dump_json()
    assert settings.connections.admin_token is not None
    assert settings.connections.admin_token.get_secret_value() == TOKEN


def test_the_log_level_is_accepted_in_any_case() -> None:
    assert ContainerSettings.from_env({EnvVar.LOG_LEVEL: "debug"}).service.log_level == "DEBUG"


def test_an_invalid_environment_exits_2_with_one_logged_line(
    monkeypatch: pytest.MonkeyPatch, capsys: pytest.CaptureFixture[str]
) -> None:
    root = logging.getLogger()
    monkeypatch.setattr(root, "handlers", [])  # main() configures logging; give the handlers back afterwards
    monkeypatch.setattr(root, "level", root.level)
    monkeypatch.setenv(EnvVar.HTTP_PORT, "abc")
    monkeypatch.setenv(EnvVar.DRAIN_DEADLINE_SECS, "soon")

    assert entry.main([]) == 2

    [line] = capsys.readouterr().err.splitlines()
    record = json.loads(line)
    assert record["level"] == "ERROR"
    assert "BRIDGE_HTTP_PORT: " in record["message"]
    assert "BRIDGE_DRAIN_DEADLINE_SECS: " in record["message"]


def test_the_settings_module_imports_no_server_or_mqtt_library() -> None:
    # The CDK construct imports it: synth must not need the server's dependencies.
    probe = "import sys, bridge_container.settings; print(sorted({'fastapi', 'uvicorn', 'awscrt'} & set(sys.modules)))"
    result = subprocess.run(
        [sys.executable, "-c", probe], capture_output=True, text=True, check=True, cwd=REPOSITORY_ROOT
    )

    assert result.stdout.strip() == "[]"


@pytest.mark.parametrize("rate", ["0", "15.5"])
def test_the_registration_rate_stays_within_the_create_thing_quota(rate: str) -> None:
    with pytest.raises(SettingsError, match="BRIDGE_REGISTRATION_RATE_PER_SEC"):
        ServiceSettings.from_env({"BRIDGE_REGISTRATION_RATE_PER_SEC": rate})
    assert ServiceSettings.from_env({"BRIDGE_REGISTRATION_RATE_PER_SEC": "5"}).registration_rate_per_sec == 5.0
