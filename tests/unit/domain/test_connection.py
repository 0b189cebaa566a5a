"""The connection model: the seed's body, validation with field paths, secrets kept out of every output."""

from __future__ import annotations

import copy
import json
from pathlib import Path
from typing import Any

import pytest
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from bridge_domain.exceptions import ConfigError
from bridge_domain.loading import load_connection_file, parse_connection, resolve_secret_references
from bridge_domain.secrets import REVEAL_SECRETS, SecretsManagerRef
from devtools.pki import CertPair
from tests.unit.domain.conftest import valid_document

SECRET = "lymHcNdzkkolnhZHnV5Q5YN/GTMFNiARtAj/7dz6758"


def paths(error: ConfigError) -> set[str]:
    return {issue.path for issue in error.issues}


def test_seed_body_with_real_certificate_is_valid(document: dict[str, Any]) -> None:
    connection = parse_connection(document)
    config = connection.configuration
    assert connection.connector_id == "actility-aws-iot"
    assert config.endpoint == "a2plmnutiyt-ats.iot.eu-central-1.amazonaws.com"
    assert config.port == 8883
    assert config.account_id == "123456789012"
    assert config.warnings() == [
        "configuration.lns: ThingPark has no asKey, so ThingPark uplink tokens are not verified"
    ]


def test_every_problem_is_reported_at_once_with_its_path(document: dict[str, Any]) -> None:
    config = document["configuration"]
    config.update(region="Frankfurt", downlinkPort=0, accountPrefix="Not A Prefix")
    del config["certificate"]
    with pytest.raises(ConfigError) as caught:
        parse_connection(document)
    assert paths(caught.value) >= {
        "configuration.region",
        "configuration.downlinkPort",
        "configuration.accountPrefix",
        "configuration.certificate",
    }


@pytest.mark.parametrize("field", ["certificate", "privateKey", "certificateId"])
def test_ssl_needs_certificate_fields(document: dict[str, Any], field: str) -> None:
    del document["configuration"][field]
    with pytest.raises(ConfigError) as caught:
        parse_connection(document)
    assert paths(caught.value) == {f"configuration.{field}"}


def test_ssl_without_certificate_is_valid_when_the_deployment_creates_it(document: dict[str, Any]) -> None:
    config = document["configuration"]
    for field in ("certificate", "privateKey", "certificateId"):
        del config[field]
    config["createCertificate"] = True
    assert parse_connection(document).configuration.create_certificate is True


def test_wss_needs_no_certificate_but_keeps_stored_fields(document: dict[str, Any]) -> None:
    document["configuration"]["protocol"] = "WSS"
    config = parse_connection(document).configuration
    assert config.port == 443
    assert config.certificate is not None
    del document["configuration"]["certificate"]
    del document["configuration"]["privateKey"]
    assert parse_connection(document).configuration.certificate is None


def test_key_must_belong_to_the_certificate(document: dict[str, Any], other_cert: CertPair) -> None:
    document["configuration"]["privateKey"] = other_cert.key_pem
    with pytest.raises(ConfigError) as caught:
        parse_connection(document)
    assert paths(caught.value) == {"configuration.privateKey"}


def test_non_pem_certificate_is_refused_without_echoing_it(document: dict[str, Any]) -> None:
    document["configuration"]["privateKey"] = "-----BEGIN RSA PRIVATE KEY-----" + SECRET
    with pytest.raises(ConfigError) as caught:
        parse_connection(document)
    assert "configuration.privateKey" in paths(caught.value)
    assert SECRET not in str(caught.value)


def test_non_ats_prefix_gives_a_warning(document: dict[str, Any]) -> None:
    document["configuration"]["accountPrefix"] = "a2plmnutiyt"
    warnings = parse_connection(document).configuration.warnings()
    assert any("-ats" in warning for warning in warnings)


def test_certificate_region_must_match(document: dict[str, Any]) -> None:
    document["configuration"]["region"] = "us-west-2"
    with pytest.raises(ConfigError) as caught:
        parse_connection(document)
    assert paths(caught.value) == {"configuration.certificateId"}


def test_uplink_rate_cannot_exceed_what_the_pool_may_publish(document: dict[str, Any]) -> None:
    document["configuration"].update(poolSize=2, uplinkRatePerSec=500)
    with pytest.raises(ConfigError) as caught:
        parse_connection(document)
    assert paths(caught.value) == {"configuration.uplinkRatePerSec"}


def test_uplink_topics_must_not_match_the_downlink_filter(document: dict[str, Any]) -> None:
    document["configuration"]["downlinkTopicPattern"] = "tpx/things/{DevEUI}/uplink"
    with pytest.raises(ConfigError) as caught:
        parse_connection(document)
    assert paths(caught.value) == {"configuration.downlinkTopicPattern"}


def test_unknown_field_is_named(document: dict[str, Any]) -> None:
    document["configuration"]["uplinkTopicPatern"] = "x/{DevEUI}"
    with pytest.raises(ConfigError) as caught:
        parse_connection(document)
    assert paths(caught.value) == {"configuration.uplinkTopicPatern"}


def test_china_region_endpoint(document: dict[str, Any]) -> None:
    config = document["configuration"]
    config.update(region="cn-north-1", certificateId="ab" * 32)
    assert parse_connection(document).configuration.endpoint == "a2plmnutiyt-ats.iot.cn-north-1.amazonaws.com.cn"


def test_secrets_never_appear_in_repr_or_dumps(document: dict[str, Any]) -> None:
    connection = parse_connection(document)
    key_line = document["configuration"]["privateKey"].splitlines()[1]
    python_dump = json.dumps(connection.model_dump(), default=str)
    for text in (repr(connection), str(connection), connection.model_dump_json(), python_dump):
        assert SECRET not in text
        assert key_line not in text
    dumped = connection.model_dump(mode="json")["configuration"]
    assert dumped["secretAccessKey"] == "**********"
    assert dumped["privateKey"] == "**********"


def test_secrets_revealed_only_on_request(document: dict[str, Any]) -> None:
    connection = parse_connection(document)
    revealed = connection.model_dump(mode="json", context={REVEAL_SECRETS: True})
    assert revealed["configuration"]["secretAccessKey"] == SECRET
    assert parse_connection(revealed) == connection


def test_secret_from_environment(document: dict[str, Any], monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv("TEST_BRIDGE_SECRET", SECRET)
    document["configuration"]["secretAccessKey"] = {"env": "TEST_BRIDGE_SECRET"}
    config = parse_connection(document).configuration
    assert config.secret_access_key is not None
    assert config.secret_access_key.get_secret_value() == SECRET  # type: ignore[union-attr]


def test_missing_environment_variable_names_the_field(document: dict[str, Any]) -> None:
    document["configuration"]["secretAccessKey"] = {"env": "TEST_BRIDGE_UNSET_VARIABLE"}
    with pytest.raises(ConfigError) as caught:
        parse_connection(document)
    assert paths(caught.value) == {"configuration.secretAccessKey"}
    assert "TEST_BRIDGE_UNSET_VARIABLE" in str(caught.value)


def test_secrets_manager_reference_is_fetched_and_validated(document: dict[str, Any]) -> None:
    key_pem = document["configuration"]["privateKey"]
    document["configuration"]["privateKey"] = {"secretsManager": {"secretId": "bridge/key"}}
    connection = parse_connection(document)
    assert isinstance(connection.configuration.private_key, SecretsManagerRef)
    fetched: list[str] = []

    def fetch(ref: SecretsManagerRef) -> str:
        fetched.append(ref.secret_id)
        return str(key_pem)

    resolved = resolve_secret_references(connection, fetch).configuration
    assert fetched == ["bridge/key"]
    assert resolved.private_key is not None
    assert resolved.private_key.get_secret_value() == key_pem  # type: ignore[union-attr]


def test_load_from_file_names_the_file(tmp_path: Path, document: dict[str, Any]) -> None:
    path = tmp_path / "connection.json"
    path.write_text(json.dumps(document))
    assert load_connection_file(path).name == "Actility AWS Connection"
    path.write_text("{not json")
    with pytest.raises(ConfigError, match=r"connection\.json"):
        load_connection_file(path)
    with pytest.raises(ConfigError, match="does not exist"):
        load_connection_file(tmp_path / "missing.json")


# --- property: every invalid value is reported with its field path -------------------------------------------------
INVALID_VALUES: dict[str, st.SearchStrategy[object]] = {
    "region": st.sampled_from(["", "EU", "eu-central", "eu_central_1", "europe-central-1a"]),
    "accountPrefix": st.sampled_from(["", "UPPER-ats", "a b", "x-ats-ats", "short"]),
    "downlinkPort": st.one_of(st.integers(max_value=0), st.integers(min_value=224)),
    "poolSize": st.one_of(st.integers(max_value=0), st.integers(min_value=11)),
    "keepAliveSecs": st.one_of(st.integers(max_value=29), st.integers(min_value=1201)),
    "protocol": st.sampled_from(["ssl", "MQTT", "TLS", ""]),
    "uplinkTopicPattern": st.sampled_from(["a/+/{DevEUI}", "no/placeholder", "$sys/{DevEUI}", "a/{Nope}/{DevEUI}"]),
    "downlinkTopicPattern": st.sampled_from(["a/#/{DevEUI}", "d/x{DevEUI}y", "d/{FPort}/{DevEUI}"]),
    "deviceType": st.sampled_from(["", "has space", "x" * 129]),
    "certificateId": st.sampled_from(["cert", "arn:aws:iot:eu-central-1:12:cert/x", "AB" * 32]),
    "downlinkRatePerSec": st.integers(min_value=101, max_value=10**6),
}


@settings(suppress_health_check=[HealthCheck.function_scoped_fixture], max_examples=60, deadline=None)
@given(
    changes=st.dictionaries(st.sampled_from(sorted(INVALID_VALUES)), st.none(), min_size=1, max_size=4).flatmap(
        lambda keys: st.fixed_dictionaries({key: INVALID_VALUES[key] for key in keys})
    )
)
def test_every_invalid_field_is_reported_with_its_path(bridge_cert: CertPair, changes: dict[str, object]) -> None:
    document = copy.deepcopy(valid_document(bridge_cert))
    document["configuration"].update(changes)
    with pytest.raises(ConfigError) as caught:
        parse_connection(document)
    assert {f"configuration.{field}" for field in changes} <= paths(caught.value)
