"""The console over plain HTTP against a local run: sessions, CSRF, headers, and no secret in any page."""

from __future__ import annotations

import json
import re
from collections.abc import Iterator

import httpx
import pytest

from tests.console.conftest import LocalRun

pytestmark = pytest.mark.integration

CSRF_RE = re.compile(r'name="csrf" value="([^"]+)"')


@pytest.fixture
def anonymous(local_run: LocalRun) -> Iterator[httpx.Client]:
    with httpx.Client(base_url=local_run.url, timeout=30.0) as client:
        yield client


@pytest.fixture
def logged_in(local_run: LocalRun) -> Iterator[httpx.Client]:
    with httpx.Client(base_url=local_run.url, timeout=30.0) as client:
        response = client.post("/console/login", data={"token": local_run.token})
        assert response.status_code == 303
        yield client


def csrf_of(client: httpx.Client) -> str:
    match = CSRF_RE.search(client.get("/console/connections").text)
    assert match is not None
    return match.group(1)


def test_pages_without_a_session_lead_to_the_login(anonymous: httpx.Client, local_run: LocalRun) -> None:
    page = anonymous.get("/console/connections")
    assert page.status_code == 303
    assert page.headers["location"] == "/console/login"
    fragment = anonymous.get(f"/console/connections/{local_run.connection_id}/panel", headers={"HX-Request": "true"})
    assert fragment.status_code == 401
    assert fragment.headers["HX-Redirect"] == "/console/login"
    anonymous.cookies.set("bridge_console", "eyJzaWQiOiJ4In0.forged.sig", path="/console")
    assert anonymous.get("/console/connections").status_code == 303


def test_a_post_without_the_sessions_csrf_token_changes_nothing(logged_in: httpx.Client, local_run: LocalRun) -> None:
    path = f"/console/connections/{local_run.connection_id}/delete"
    assert logged_in.post(path).status_code == 403
    assert logged_in.post(path, data={"csrf": "not-the-token"}).status_code == 403
    assert logged_in.post(path, headers={"X-CSRF-Token": "not-the-token"}).status_code == 403
    created = logged_in.post("/console/connections/new", data={"name": "no-csrf"})
    assert created.status_code == 403
    with local_run.api() as api:
        assert api.get(f"/connections/{local_run.connection_id}").status_code == 200
        names = [item["name"] for item in api.get("/connections").json()["connections"]]
    assert "no-csrf" not in names


def test_a_test_downlink_needs_the_csrf_token_and_a_valid_dev_eui(logged_in: httpx.Client, local_run: LocalRun) -> None:
    path = f"/console/connections/{local_run.connection_id}/downlink"
    assert logged_in.post(path, data={"devEui": "70B3D57ED00000AA", "payloadHex": "01"}).status_code == 403
    refused = logged_in.post(path, data={"csrf": csrf_of(logged_in), "devEui": "not-a-eui", "payloadHex": "01"})
    assert refused.status_code == 422
    assert "DevEUI: 16 hexadecimal digits" in refused.text


def test_no_page_shows_a_secret_of_the_connection(logged_in: httpx.Client, local_run: LocalRun) -> None:
    secrets = json.loads((local_run.state_dir / "lns-secrets.json").read_text())
    key_pem = (local_run.state_dir / "pki" / "bridge.key").read_text()
    key_body = key_pem.strip().splitlines()[1]  # a line of the private key's base64
    cert_body = (local_run.state_dir / "pki" / "bridge.pem").read_text().strip().splitlines()[1]
    base = f"/console/connections/{local_run.connection_id}"
    pages = [
        logged_in.get(path)
        for path in (
            "/console/connections",
            base,
            f"{base}/edit",
            f"{base}/panel",
            f"{base}/live",
            f"{base}/live/uplinks",
        )
    ]
    assert [page.status_code for page in pages] == [200] * len(pages)
    everything = "".join(page.text for page in pages)
    for secret in (
        secrets["asKey"],
        secrets["chirpstackToken"],
        secrets["ttsToken"],
        key_body,
        cert_body,
        local_run.token,
    ):
        assert secret not in everything
    assert "stored: leave blank to keep it" in pages[2].text
    dashboard = pages[1].text  # the routes to configure in each network server, secrets named but not shown
    assert f"{local_run.url}/connections/{local_run.connection_id}/uplinks/chirpstack" in dashboard
    assert "Authorization: Bearer &lt;the connection&#39;s ingressToken&gt;" in dashboard
    assert "AS ID: make-run-as" in dashboard


def test_pages_forbid_framing_and_foreign_scripts_and_are_not_cached(logged_in: httpx.Client) -> None:
    page = logged_in.get("/console/connections")
    assert "script-src 'self'" in page.headers["Content-Security-Policy"]
    assert "frame-ancestors 'none'" in page.headers["Content-Security-Policy"]
    assert page.headers["X-Frame-Options"] == "DENY"
    assert page.headers["Cache-Control"] == "no-store"


def cookie_attributes(response: httpx.Response) -> set[str]:
    """The attributes of the Set-Cookie header, lower case, without the value (``secure``, ``samesite=strict``...)."""
    return {part.strip().lower() for part in response.headers["set-cookie"].split(";")[1:]}


def test_the_session_cookie_is_secure_behind_an_https_load_balancer(
    anonymous: httpx.Client, local_run: LocalRun
) -> None:
    plain = cookie_attributes(anonymous.post("/console/login", data={"token": local_run.token}))
    assert "secure" not in plain
    behind_tls = cookie_attributes(
        anonymous.post("/console/login", data={"token": local_run.token}, headers={"X-Forwarded-Proto": "https"})
    )
    assert {"secure", "httponly", "samesite=strict", "path=/console"} <= behind_tls


def test_a_second_connection_for_the_same_account_and_region_is_refused_above_the_form(
    logged_in: httpx.Client, local_run: LocalRun
) -> None:
    form = {
        "csrf": csrf_of(logged_in),
        "name": "same-account",
        "configuration.deviceType": "sensor",
        "configuration.region": "eu-central-1",  # the make-run connection's region, in the same (moto) account
        "configuration.protocol": "WSS",
        "configuration.accountPrefix": "a2plmnutiyt-ats",
        "lns.thingpark.enabled": "on",
    }
    refused = logged_in.post("/console/connections/new", data=form)
    assert refused.status_code == 409
    assert 'id="form-errors"' in refused.text
    assert "eu-central-1" in refused.text
    assert 'value="same-account"' in refused.text  # what was typed stays


def test_the_dashboard_of_a_connection_that_cannot_start_says_why(logged_in: httpx.Client, local_run: LocalRun) -> None:
    body = {
        "connectorId": "actility-aws-iot",
        "name": "no-endpoint",
        "configuration": {"deviceType": "sensor", "region": "eu-north-1", "protocol": "WSS"},  # no accountPrefix
    }
    with local_run.api() as api:
        created = api.post("/connections", json=body)
        assert created.status_code == 201, created.text
        connection_id = created.json()["connectionId"]
        try:
            panel = logged_in.get(f"/console/connections/{connection_id}/panel")
        finally:
            api.delete(f"/connections/{connection_id}")
    assert panel.status_code == 200
    assert "the connection has no endpoint" in panel.text
