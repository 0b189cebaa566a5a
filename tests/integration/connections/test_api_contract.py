"""The Connections API over HTTP: seed bodies, masking, protocol switch, one account per region, PUT, refusals."""

from __future__ import annotations

import copy
from typing import Any

import boto3
import pytest

from bridge_domain.secrets import MASK, reveal
from devtools.pki import CertPair
from tests.integration.connections.conftest import ADMIN_TOKEN, Api
from tests.unit.connections.support import AS_KEY, SECRET_ACCESS_KEY, seed_body, wss_body

pytestmark = pytest.mark.integration

CERT_FIELDS = ("certificate", "privateKey", "certificateId")


def create(api: Api, body: dict[str, Any]) -> dict[str, Any]:
    response = api.client.post("/connections", json=body)
    assert response.status_code == 201, response.text
    created: dict[str, Any] = response.json()
    return created


def iam_access_key(user: str, monkeypatch: pytest.MonkeyPatch, account: str | None = None) -> tuple[str, str]:
    """A real (moto) IAM access key, owned by ``account`` when given."""
    if account is not None:
        monkeypatch.setenv("MOTO_ACCOUNT_ID", account)
    iam = boto3.client("iam")
    iam.create_user(UserName=user)
    key = iam.create_access_key(UserName=user)["AccessKey"]
    monkeypatch.delenv("MOTO_ACCOUNT_ID", raising=False)
    return key["AccessKeyId"], key["SecretAccessKey"]


# --- admin token -----------------------------------------------------------------------------------------------
@pytest.mark.parametrize(
    ("method", "path"),
    [
        ("GET", "/connections"),
        ("POST", "/connections"),
        ("GET", "/connections/x"),
        ("PUT", "/connections/x"),
        ("DELETE", "/connections/x"),
    ],
)
def test_every_route_needs_the_admin_token(api: Api, method: str, path: str) -> None:
    missing = api.anonymous.request(method, path, json={})
    wrong = api.anonymous.request(method, path, json={}, headers={"Authorization": "Bearer " + ADMIN_TOKEN[:-1] + "x"})
    for response in (missing, wrong):
        assert response.status_code == 401
        assert response.headers["WWW-Authenticate"] == "Bearer"
        assert response.json()["error"] == "unauthorized"
    assert api.runtimes.calls == []


# --- create and read --------------------------------------------------------------------------------------------
def test_create_starts_the_connection_and_answers_without_secrets(api: Api, cert: CertPair) -> None:
    response = api.client.post("/connections", json=seed_body(cert))
    assert response.status_code == 201
    created = response.json()
    connection_id = created["connectionId"]
    assert response.headers["Location"] == f"/connections/{connection_id}"
    for secret in (SECRET_ACCESS_KEY, AS_KEY, "PRIVATE KEY"):
        assert secret not in response.text
    config = created["configuration"]
    assert config["secretAccessKey"] == config["privateKey"] == config["lns"][0]["asKey"] == MASK
    assert created["status"] == {
        "state": "OPENED",
        "reason": None,
        "clients": [],
        "endpoint": "a2plmnutiyt-ats.iot.eu-central-1.amazonaws.com",
        "port": 8883,
        "protocol": "SSL",
        "certificateId": seed_body(cert)["configuration"]["certificateId"],
        "accountId": "123456789012",
        "region": "eu-central-1",
    }
    assert api.runtimes.calls == [("add", connection_id)]
    running = api.runtimes.running[connection_id].configuration
    assert reveal(running.secret_access_key) == SECRET_ACCESS_KEY  # the runtime gets the real secret


def test_get_and_list_show_live_state_and_mask_secrets(api: Api, cert: CertPair) -> None:
    created = create(api, seed_body(cert))
    api.runtimes.state = api.runtimes.state.AUTHENTICATION_FAILED
    one = api.client.get(f"/connections/{created['connectionId']}")
    listed = api.client.get("/connections")
    assert one.status_code == listed.status_code == 200
    assert one.json()["status"]["state"] == "AUTHENTICATION_FAILED"
    assert one.json()["status"]["reason"] == "held by the test"
    assert [item["connectionId"] for item in listed.json()["connections"]] == [created["connectionId"]]
    for response in (one, listed):
        assert SECRET_ACCESS_KEY not in response.text
        assert "PRIVATE KEY" not in response.text


def test_unknown_connection_is_404(api: Api, cert: CertPair) -> None:
    assert api.client.get("/connections/nope").status_code == 404
    assert api.client.put("/connections/nope", json=seed_body(cert)).status_code == 404
    assert api.client.delete("/connections/nope").status_code == 404


# --- refusals ---------------------------------------------------------------------------------------------------
def test_unknown_connector_is_400(api: Api, cert: CertPair) -> None:
    body = seed_body(cert)
    body["connectorId"] = "azure-iot-hub"
    response = api.client.post("/connections", json=body)
    assert response.status_code == 400
    assert response.json()["error"] == "unknown_connector"


def test_malformed_json_is_400(api: Api) -> None:
    response = api.client.post(
        "/connections", content=b'{"connectorId": ', headers={"Content-Type": "application/json"}
    )
    assert response.status_code == 400
    assert response.json()["error"] == "malformed_body"


def test_validation_errors_are_422_with_every_field_path(api: Api, cert: CertPair) -> None:
    body = seed_body(cert)
    body["configuration"].update(region="Frankfurt", downlinkPort=0, uplinkTopicPattern="tpx/+/{DevEUI}")
    del body["configuration"]["privateKey"]
    response = api.client.post("/connections", json=body)
    assert response.status_code == 422
    paths = {issue["path"] for issue in response.json()["issues"]}
    assert paths == {
        "configuration.region",
        "configuration.downlinkPort",
        "configuration.uplinkTopicPattern",
        "configuration.privateKey",
    }
    assert "PRIVATE KEY" not in response.text
    assert api.client.get("/connections").json()["connections"] == []


@pytest.mark.parametrize(
    ("pattern", "reason"),
    [
        ("tp/{DevEUI}/{DevEUI_uplink.CustomerData.site|'a/b'}", "neither a field"),
        ("tp/{DevEUI}/{CustomerData}", "unknown placeholder {CustomerData}"),
        ("tp/{DevEUI}/{'x'|DevEUI_uplink.site}", "a quoted constant can only be the last"),
    ],
)
def test_a_bad_keyword_pattern_is_422_naming_the_field_and_the_reason(
    api: Api, cert: CertPair, pattern: str, reason: str
) -> None:
    body = seed_body(cert)
    body["configuration"]["uplinkTopicPattern"] = pattern
    response = api.client.post("/connections", json=body)
    assert response.status_code == 422
    [issue] = response.json()["issues"]
    assert issue["path"] == "configuration.uplinkTopicPattern"
    assert reason in issue["message"]


def test_a_keyword_pattern_is_stored_as_written(api: Api, cert: CertPair) -> None:
    body = seed_body(cert)
    pattern = "tp/{DevEUI_uplink.CustomerData.site|'none'}/{DevEUI}/uplink"
    body["configuration"]["uplinkTopicPattern"] = pattern
    created = create(api, body)
    assert created["configuration"]["uplinkTopicPattern"] == pattern


def test_a_mask_in_a_new_connection_is_422(api: Api, cert: CertPair) -> None:
    body = seed_body(cert)
    body["configuration"]["secretAccessKey"] = MASK
    response = api.client.post("/connections", json=body)
    assert response.status_code == 422
    assert [issue["path"] for issue in response.json()["issues"]] == ["configuration.secretAccessKey"]


def test_oversized_body_is_413(api: Api) -> None:
    response = api.client.post("/connections", json={"name": "x" * 300_000})
    assert response.status_code == 413


# --- one connection per account and region --------------------------------------------------------------------
def test_second_connection_for_the_certificate_account_and_region_is_409(
    api: Api, cert: CertPair, other_cert: CertPair
) -> None:
    first = create(api, seed_body(cert))
    response = api.client.post("/connections", json=seed_body(other_cert, name="again"))
    assert response.status_code == 409
    assert response.json()["error"] == "duplicate_account"
    assert first["connectionId"] in response.json()["message"]
    create(api, seed_body(other_cert, region="eu-west-1", name="second region"))
    create(api, seed_body(other_cert, account="210987654321", name="second account"))
    assert len(api.client.get("/connections").json()["connections"]) == 3


def test_access_key_account_comes_from_sts(api: Api, monkeypatch: pytest.MonkeyPatch) -> None:
    own_key = iam_access_key("alice", monkeypatch)
    same_account_key = iam_access_key("bob", monkeypatch)
    foreign_key = iam_access_key("carol", monkeypatch, account="210987654321")
    created = create(api, wss_body(*own_key))
    assert created["status"]["accountId"] == "123456789012"
    assert api.client.post("/connections", json=wss_body(*same_account_key, name="bob")).status_code == 409
    foreign = create(api, wss_body(*foreign_key, name="carol"))
    assert foreign["status"]["accountId"] == "210987654321"


# --- full replacement -------------------------------------------------------------------------------------------
def test_put_replaces_the_whole_configuration_and_restarts(api: Api, cert: CertPair) -> None:
    created = create(api, seed_body(cert))
    connection_id = created["connectionId"]
    body = seed_body(cert)
    del body["configuration"]["description"]  # left out → back to its default, not kept
    body["configuration"]["poolSize"] = 4
    body["configuration"]["uplinkRatePerSec"] = 400
    response = api.client.put(f"/connections/{connection_id}", json=body)
    assert response.status_code == 200
    replaced = response.json()
    assert replaced["version"] == 2
    assert replaced["configuration"]["description"] == ""
    assert replaced["configuration"]["poolSize"] == 4
    assert api.runtimes.calls == [("add", connection_id), ("replace", connection_id)]
    assert api.runtimes.running[connection_id].configuration.pool_size == 4


def test_put_with_masks_keeps_the_stored_secrets(api: Api, cert: CertPair) -> None:
    created = create(api, seed_body(cert))
    connection_id = created["connectionId"]
    read_back = api.client.get(f"/connections/{connection_id}").json()
    body = {key: read_back[key] for key in ("connectorId", "name")}
    body["configuration"] = copy.deepcopy(read_back["configuration"])
    body["configuration"]["description"] = "edited"
    response = api.client.put(f"/connections/{connection_id}", json=body)
    assert response.status_code == 200, response.text
    running = api.runtimes.running[connection_id].configuration
    assert running.description == "edited"
    assert reveal(running.secret_access_key) == SECRET_ACCESS_KEY
    assert reveal(running.private_key) == cert.key_pem


def test_ssl_to_wss_hides_the_certificate_and_ssl_brings_it_back(api: Api, cert: CertPair) -> None:
    created = create(api, seed_body(cert))
    connection_id = created["connectionId"]
    body = seed_body(cert)
    for field in CERT_FIELDS:
        del body["configuration"][field]
    body["configuration"]["protocol"] = "WSS"
    wss = api.client.put(f"/connections/{connection_id}", json=body).json()
    assert not set(CERT_FIELDS) & set(wss["configuration"])
    assert wss["status"]["certificateId"] is None
    assert wss["status"]["port"] == 443
    assert api.runtimes.running[connection_id].configuration.certificate is not None  # kept, hidden
    body["configuration"]["protocol"] = "SSL"
    response = api.client.put(f"/connections/{connection_id}", json=body)
    assert response.status_code == 200, response.text
    ssl = response.json()
    assert ssl["configuration"]["certificateId"] == created["configuration"]["certificateId"]
    assert ssl["configuration"]["privateKey"] == MASK
    assert reveal(api.runtimes.running[connection_id].configuration.private_key) == cert.key_pem


def test_put_onto_another_connections_account_is_409(api: Api, cert: CertPair, other_cert: CertPair) -> None:
    create(api, seed_body(cert))
    second = create(api, seed_body(other_cert, region="eu-west-1", name="west"))
    response = api.client.put(f"/connections/{second['connectionId']}", json=seed_body(other_cert))
    assert response.status_code == 409
    assert api.client.get(f"/connections/{second['connectionId']}").json()["status"]["region"] == "eu-west-1"


# --- delete -----------------------------------------------------------------------------------------------------
def test_delete_stops_the_connection_and_frees_the_account(api: Api, cert: CertPair) -> None:
    created = create(api, seed_body(cert))
    connection_id = created["connectionId"]
    response = api.client.delete(f"/connections/{connection_id}")
    assert response.status_code == 204
    assert response.content == b""
    assert api.runtimes.calls[-1] == ("remove", connection_id)
    assert connection_id not in api.runtimes.running
    assert api.client.get(f"/connections/{connection_id}").status_code == 404
    create(api, seed_body(cert))
