"""Documents: secrets split for storage, masks standing for stored secrets, certificate fields kept across WSS."""

from __future__ import annotations

import copy
from typing import Any

import pytest

from bridge_container.connections.catalog import validate_body
from bridge_container.connections.documents import join_secrets, public_view, split_secrets
from bridge_container.connections.exceptions import InvalidConnectionError, UnknownConnectorError
from bridge_container.connections.store import AccountKey, StoredConnection, utc_now
from bridge_domain.connection import Connection
from bridge_domain.loading import parse_connection
from bridge_domain.secrets import MASK, reveal
from devtools.pki import CertPair, DevPki
from tests.unit.connections.support import AS_KEY, SECRET_ACCESS_KEY, seed_body


@pytest.fixture(scope="module")
def cert(pki: DevPki) -> CertPair:
    return pki.client("documents-bridge")


@pytest.fixture
def body(cert: CertPair) -> dict[str, Any]:
    return seed_body(cert)


def stored(connection: Connection) -> StoredConnection:
    now = utc_now()
    return StoredConnection("c1", connection, AccountKey("123456789012", "eu-central-1"), 1, now, now)


def test_split_leaves_no_secret_in_the_public_part_and_join_restores_it(body: dict[str, Any]) -> None:
    connection = parse_connection(body)
    public, secrets = split_secrets(connection)
    assert SECRET_ACCESS_KEY not in str(public)
    assert set(secrets) == {
        "/configuration/secretAccessKey",
        "/configuration/certificate",
        "/configuration/privateKey",
        "/configuration/lns/0/asKey",
    }
    assert parse_connection(join_secrets(public, secrets)) == connection


def test_public_view_masks_secrets(body: dict[str, Any]) -> None:
    view = public_view(parse_connection(body))["configuration"]
    assert view["secretAccessKey"] == view["privateKey"] == view["lns"][0]["asKey"] == MASK
    assert view["certificateId"] == body["configuration"]["certificateId"]


def test_public_view_hides_certificate_fields_while_wss(body: dict[str, Any]) -> None:
    body["configuration"]["protocol"] = "WSS"
    view = public_view(parse_connection(body))["configuration"]
    assert not {"certificate", "privateKey", "certificateId"} & set(view)


def test_mask_in_a_put_keeps_the_stored_secret(body: dict[str, Any]) -> None:
    previous = stored(parse_connection(body))
    update = copy.deepcopy(body)
    config = update["configuration"]
    config.update(secretAccessKey=MASK, privateKey=MASK, certificate=MASK, description="renamed")
    config["lns"][0]["asKey"] = MASK
    result = validate_body(update, previous).configuration
    assert result.description == "renamed"
    assert reveal(result.secret_access_key) == SECRET_ACCESS_KEY
    assert reveal(result.lns[0].as_key) == AS_KEY  # type: ignore[union-attr]


def test_mask_where_nothing_is_stored_is_an_error_with_its_path(body: dict[str, Any]) -> None:
    body["configuration"]["secretAccessKey"] = MASK
    with pytest.raises(InvalidConnectionError) as caught:
        validate_body(body)
    assert [issue.path for issue in caught.value.issues] == ["configuration.secretAccessKey"]


def test_mask_of_an_lns_key_is_matched_by_kind_not_position(body: dict[str, Any]) -> None:
    previous = stored(parse_connection(body))
    update = copy.deepcopy(body)
    chirpstack = {"kind": "chirpstack", "ingressToken": "cs-token", "apiUrl": "https://cs.example.com/api"}
    update["configuration"]["lns"] = [chirpstack, {"kind": "thingpark", "asKey": MASK}]
    result = validate_body(update, previous).configuration
    assert reveal(result.lns_of_kind("thingpark").as_key) == AS_KEY  # type: ignore[union-attr]
    update["configuration"]["lns"] = [{**chirpstack, "ingressToken": MASK}]
    with pytest.raises(InvalidConnectionError) as caught:
        validate_body(update, previous)
    assert [issue.path for issue in caught.value.issues] == ["configuration.lns[0].ingressToken"]


def test_certificate_fields_left_out_survive_wss_and_come_back_with_ssl(body: dict[str, Any]) -> None:
    original = parse_connection(body)
    to_wss = copy.deepcopy(body)
    for field in ("certificate", "privateKey", "certificateId"):
        del to_wss["configuration"][field]
    to_wss["configuration"]["protocol"] = "WSS"
    wss = validate_body(to_wss, stored(original))
    assert wss.configuration.certificate_id == original.configuration.certificate_id
    back = copy.deepcopy(to_wss)
    back["configuration"]["protocol"] = "SSL"
    ssl = validate_body(back, stored(wss))
    assert reveal(ssl.configuration.private_key) == reveal(original.configuration.private_key)


def test_null_clears_a_retained_certificate_field(body: dict[str, Any]) -> None:
    update = copy.deepcopy(body)
    update["configuration"].update(protocol="WSS", certificate=None, privateKey=None, certificateId=None)
    assert validate_body(update, stored(parse_connection(body))).configuration.certificate is None


def test_other_connector_is_refused_before_validation(body: dict[str, Any]) -> None:
    body["connectorId"] = "azure-iot-hub"
    del body["configuration"]["region"]
    with pytest.raises(UnknownConnectorError):
        validate_body(body)


def test_every_problem_is_reported_with_its_field_path(body: dict[str, Any]) -> None:
    body["configuration"].update(region="Frankfurt", downlinkPort=500)
    del body["name"]
    with pytest.raises(InvalidConnectionError) as caught:
        validate_body(body)
    assert {issue.path for issue in caught.value.issues} == {
        "name",
        "configuration.region",
        "configuration.downlinkPort",
    }
