"""The connection model: the seed's body, validation with field paths, secrets kept out of every output."""

from __future__ import annotations

import copy
import json
from pathlib import Path
from typing import Any

import pytest
from hypothesis import HealthCheck, example, given, settings
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


@pytest.mark.parametrize(
    ("field", "value"),
    [("uplinkQos", 2), ("uplinkQos", "1"), ("uplinkTimeValidity", 0), ("uplinkTimeValidity", 86_401)],
)
def test_uplink_delivery_options_out_of_range_are_named(document: dict[str, Any], field: str, value: object) -> None:
    document["configuration"][field] = value
    with pytest.raises(ConfigError) as caught:
        parse_connection(document)
    assert paths(caught.value) == {f"configuration.{field}"}


def test_uplink_delivery_options_default_to_qos0_without_a_time_limit(document: dict[str, Any]) -> None:
    configuration = parse_connection(document).configuration
    assert (configuration.uplink_qos, configuration.uplink_time_validity) == (0, None)
    document["configuration"].update(uplinkQos=1, uplinkTimeValidity=600)
    configuration = parse_connection(document).configuration
    assert (configuration.uplink_qos, configuration.uplink_time_validity) == (1, 600)


def test_delivery_ack_published_needs_qos1(document: dict[str, Any]) -> None:
    document["configuration"]["deliveryAck"] = "published"
    with pytest.raises(ConfigError) as caught:
        parse_connection(document)
    assert paths(caught.value) == {"configuration.deliveryAck"}
    document["configuration"]["uplinkQos"] = 1
    assert parse_connection(document).configuration.delivery_ack == "published"


def test_uplink_topics_must_not_match_the_downlink_filter(document: dict[str, Any]) -> None:
    document["configuration"]["downlinkTopicPattern"] = "tpx/things/{DevEUI}/uplink"
    with pytest.raises(ConfigError) as caught:
        parse_connection(document)
    assert paths(caught.value) == {"configuration.downlinkTopicPattern"}


def test_basic_ingest_takes_a_rule_name_and_the_topic_after_its_prefix(document: dict[str, Any]) -> None:
    document["configuration"].update(uplinkDelivery="basicIngest", basicIngestRule="store_uplinks")
    assert parse_connection(document).configuration.uplink_topic_prefix == "$aws/rules/store_uplinks/"
    document["configuration"].update(uplinkTopicPattern="$aws/rules/x/{DevEUI}")
    with pytest.raises(ConfigError, match="cannot start with") as caught:
        parse_connection(document)
    assert paths(caught.value) == {"configuration.uplinkTopicPattern"}


@pytest.mark.parametrize("rule", ["store-uplinks", "", "a" * 129, "a/b"])
def test_a_basic_ingest_rule_name_is_what_aws_iot_allows(document: dict[str, Any], rule: str) -> None:
    document["configuration"].update(uplinkDelivery="basicIngest", basicIngestRule=rule)
    with pytest.raises(ConfigError) as caught:
        parse_connection(document)
    assert paths(caught.value) == {"configuration.basicIngestRule"}


def test_basic_ingest_uplinks_cannot_loop_into_the_downlink_subscription(document: dict[str, Any]) -> None:
    # No subscriber sees a Basic Ingest publish, so uplink and downlink topics may share a pattern.
    document["configuration"].update(downlinkTopicPattern="tpx/things/{DevEUI}/uplink", uplinkDelivery="basicIngest")
    assert parse_connection(document).configuration.uplink_delivery == "basicIngest"


def test_topic_delivery_has_no_prefix(document: dict[str, Any]) -> None:
    assert parse_connection(document).configuration.uplink_topic_prefix == ""


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
    "downlinkRatePerSec": st.one_of(st.integers(max_value=0), st.integers(min_value=101, max_value=10**6)),
}


@settings(suppress_health_check=[HealthCheck.function_scoped_fixture], max_examples=60, deadline=None)
@given(
    changes=st.dictionaries(st.sampled_from(sorted(INVALID_VALUES)), st.none(), min_size=1, max_size=4).flatmap(
        lambda keys: st.fixed_dictionaries({key: INVALID_VALUES[key] for key in keys})
    )
)
@example(changes={"downlinkPort": 0, "poolSize": 0, "keepAliveSecs": 29})  # one below each lowest value
@example(changes={"downlinkPort": 224, "poolSize": 11, "keepAliveSecs": 1201, "downlinkRatePerSec": 101})  # one above
def test_every_invalid_field_is_reported_with_its_path(bridge_cert: CertPair, changes: dict[str, object]) -> None:
    document = copy.deepcopy(valid_document(bridge_cert))
    document["configuration"].update(changes)
    with pytest.raises(ConfigError) as caught:
        parse_connection(document)
    assert {f"configuration.{field}" for field in changes} <= paths(caught.value)


# --- limit table: every numeric bound of the model, accepted at its edge and refused one past it ---------------------
CHIRPSTACK = {"kind": "chirpstack", "ingressToken": "t" * 16, "apiUrl": "https://chirpstack.example.com/api"}
TTS = {"kind": "tts", "ingressToken": "t" * 16, "apiUrl": "https://eu1.cloud.thethings.network", "applicationId": "a"}
# field: (lowest accepted, highest accepted, other fields the edge needs to stay valid)
BOUNDS: dict[str, tuple[int, int, dict[str, Any]]] = {
    "downlinkPort": (1, 223, {}),
    "poolSize": (1, 10, {"uplinkRatePerSec": 100}),
    "uplinkRatePerSec": (1, 1000, {}),
    "perClientRatePerSec": (1, 100, {"uplinkRatePerSec": 10}),
    "downlinkRatePerSec": (1, 100, {}),
    "bufferSize": (1, 1_000_000, {}),
    "downlinkBufferSize": (1, 100_000, {}),
    "keepAliveSecs": (30, 1200, {}),
}


def issues_of(document: dict[str, Any]) -> dict[str, str]:
    with pytest.raises(ConfigError) as caught:
        parse_connection(document)
    return {issue.path: issue.message for issue in caught.value.issues}


@pytest.mark.parametrize("field", sorted(BOUNDS))
def test_each_numeric_field_is_accepted_at_both_bounds(document: dict[str, Any], field: str) -> None:
    low, high, needs = BOUNDS[field]
    for value in (low, high):
        document["configuration"].update(needs, **{field: value})
        assert parse_connection(document).configuration.model_dump(by_alias=True)[field] == value


@pytest.mark.parametrize("field", sorted(BOUNDS))
def test_each_numeric_field_is_refused_one_past_either_bound(document: dict[str, Any], field: str) -> None:
    low, high, needs = BOUNDS[field]
    for value in (low - 1, high + 1):
        changed = copy.deepcopy(document)
        changed["configuration"].update(needs, **{field: value})
        assert f"configuration.{field}" in issues_of(changed)


def test_the_broker_port_is_bounded_by_tcp(document: dict[str, Any]) -> None:
    for port in (1, 65535):
        document["configuration"]["broker"] = {"host": "localhost", "port": port}
        assert parse_connection(document).configuration.port == port
    for port in (0, 65536):
        document["configuration"]["broker"] = {"host": "localhost", "port": port}
        assert "configuration.broker.port" in issues_of(document)


@pytest.mark.parametrize(
    ("field", "longest"), [("description", 512), ("deviceType", 128), ("sharedSubscriptionGroup", 128)]
)
def test_each_text_field_is_accepted_at_its_longest_and_refused_one_longer(
    document: dict[str, Any], field: str, longest: int
) -> None:
    document["configuration"][field] = "x" * longest
    parse_connection(document)
    document["configuration"][field] = "x" * (longest + 1)
    assert f"configuration.{field}" in issues_of(document)


def test_the_name_is_1_to_128_characters(document: dict[str, Any]) -> None:
    for name in ("x", "x" * 128):
        document["name"] = name
        assert parse_connection(document).name == name
    for name in ("", "x" * 129):
        document["name"] = name
        assert "name" in issues_of(document)


def test_one_to_three_network_servers_one_of_each_kind(document: dict[str, Any]) -> None:
    document["configuration"]["lns"] = [{"kind": "thingpark"}, CHIRPSTACK, TTS]
    assert len(parse_connection(document).configuration.lns) == 3
    document["configuration"]["lns"] = []
    assert "configuration.lns" in issues_of(document)
    document["configuration"]["lns"] = [{"kind": "thingpark"}, CHIRPSTACK, TTS, CHIRPSTACK]
    assert "configuration.lns" in issues_of(document)


def test_the_uplink_rate_may_reach_what_the_pool_may_publish_and_no_more(document: dict[str, Any]) -> None:
    document["configuration"].update(poolSize=2, perClientRatePerSec=100, uplinkRatePerSec=200)
    assert parse_connection(document).configuration.uplink_rate_per_sec == 200
    document["configuration"]["uplinkRatePerSec"] = 201
    assert issues_of(document) == {
        "configuration.uplinkRatePerSec": "exceeds poolSize x perClientRatePerSec = 200/s "
        "(AWS IoT discards publishes beyond the per-connection limit)"
    }


# --- cross-field problems: each named by its own field, with its own message ---------------------------------------
@pytest.mark.parametrize(("missing", "named"), [("accessKeyId", "accessKeyId"), ("secretAccessKey", "secretAccessKey")])
def test_an_access_key_without_its_secret_names_the_missing_one(
    document: dict[str, Any], missing: str, named: str
) -> None:
    del document["configuration"][missing]
    assert issues_of(document) == {f"configuration.{named}": "accessKeyId and secretAccessKey go together"}


def test_a_key_of_another_certificate_is_named_with_the_reason(document: dict[str, Any], other_cert: CertPair) -> None:
    document["configuration"]["privateKey"] = other_cert.key_pem
    assert issues_of(document) == {"configuration.privateKey": "private key does not belong to the certificate"}


def test_a_publish_loop_is_named_with_the_reason(document: dict[str, Any]) -> None:
    document["configuration"]["downlinkTopicPattern"] = "tpx/things/{DevEUI}/uplink"
    assert issues_of(document) == {
        "configuration.downlinkTopicPattern": "uplink topics would match the downlink filter (a publish loop)"
    }


def test_an_uplink_pattern_of_256_bytes_with_its_dev_eui_is_accepted(document: dict[str, Any]) -> None:
    document["configuration"]["uplinkTopicPattern"] = "u" * 239 + "/{DevEUI}"  # 239 + "/" + 16 = 256 bytes
    assert parse_connection(document).configuration.uplink_pattern.names == ("DevEUI",)


@pytest.mark.parametrize("empty", [None, ""])
@pytest.mark.parametrize("field", ["certificate", "privateKey", "certificateId"])
def test_an_absent_or_empty_certificate_field_is_required_for_ssl(
    document: dict[str, Any], field: str, empty: str | None
) -> None:
    document["configuration"][field] = empty
    assert issues_of(document)[f"configuration.{field}"] == "required when protocol is SSL (or set createCertificate)"


def test_certificate_fields_written_in_snake_case_count_as_present(document: dict[str, Any]) -> None:
    config = document["configuration"]
    for camel, snake in (
        ("certificate", "certificate"),
        ("privateKey", "private_key"),
        ("certificateId", "certificate_id"),
    ):
        config[snake] = config.pop(camel)
    assert parse_connection(document).configuration.certificate_id == config["certificate_id"]


def test_create_certificate_in_snake_case_needs_no_certificate_fields(document: dict[str, Any]) -> None:
    config = document["configuration"]
    for field in ("certificate", "privateKey", "certificateId"):
        del config[field]
    config["create_certificate"] = True
    assert parse_connection(document).configuration.create_certificate is True


def test_a_connection_without_thingpark_warns_of_no_as_key(document: dict[str, Any]) -> None:
    document["configuration"]["lns"] = [CHIRPSTACK]
    config = parse_connection(document).configuration
    assert config.lns_of_kind("thingpark") is None
    assert config.warnings() == []


def test_the_ats_warning_says_what_to_use_instead(document: dict[str, Any]) -> None:
    document["configuration"].update(accountPrefix="a2plmnutiyt", lns=[CHIRPSTACK])
    assert parse_connection(document).configuration.warnings() == [
        "configuration.accountPrefix does not end in '-ats': legacy endpoints use deprecated Verisign CAs; "
        "use the ATS endpoint (iot:Data-ATS)"
    ]
