"""The console in a real browser against a local run: login, forms, the live view and a test downlink."""

from __future__ import annotations

import os
import re
from collections.abc import Iterator

import pytest
from playwright.sync_api import Page, expect

from devtools.pki import DevPki
from tests.console.conftest import LocalRun, log_in, screenshot

pytestmark = pytest.mark.integration

SSL_ACCOUNT = "123456789012"  # moto's account: the one the make-run connection's certificate is registered in
SSL_REGION = "eu-west-2"  # one connection per account and region: make-run holds eu-central-1


def test_a_wrong_admin_token_is_refused_and_the_right_one_opens_the_console(page: Page, local_run: LocalRun) -> None:
    page.goto(f"{local_run.url}/console/connections")
    expect(page).to_have_url(f"{local_run.url}/console/login")
    page.fill("#token", "not-the-admin-token")
    page.click("button[type=submit]")
    expect(page.locator("#login-error")).to_contain_text("Wrong admin token")
    log_in(page, local_run)
    row = page.locator(f'tr[data-connection-id="{local_run.connection_id}"]')
    expect(row.locator(".state")).to_have_text("OPENED")
    expect(row.locator(".state")).to_have_class(re.compile(r"state-OPENED"))
    cookie = next(c for c in page.context.cookies() if c["name"] == "bridge_console")
    assert cookie["httpOnly"]
    assert cookie["sameSite"] == "Strict"
    assert local_run.token not in cookie["value"]


def test_a_missing_field_is_shown_on_its_input_and_fixing_it_creates_the_connection(
    page: Page, local_run: LocalRun
) -> None:
    log_in(page, local_run)
    page.click("text=New connection")
    expect(page.locator('[data-field="configuration.deviceType"] .required')).to_have_count(1)
    page.fill('[name="name"]', "console-created")
    page.fill('[name="configuration.region"]', "eu-west-1")
    page.select_option('[name="configuration.protocol"]', "WSS")
    page.fill('[name="configuration.accountPrefix"]', "a2plmnutiyt-ats")
    page.fill('[name="configuration.clientIdPrefix"]', "console-created")
    page.click("#save")  # deviceType left out
    field = page.locator('[data-field="configuration.deviceType"]')
    expect(field.locator(".field-error")).to_have_text("Field required")
    expect(page.locator(".field-error")).to_have_count(1)
    screenshot(page, "form-error")
    expect(page.locator('[name="configuration.region"]')).to_have_value("eu-west-1")  # what was typed stays
    page.fill('[name="configuration.deviceType"]', "console-sensor")
    page.click("#save")
    expect(page.locator("h1")).to_contain_text("console-created")
    connection_id = page.url.rsplit("/", 1)[1]
    with local_run.api() as api:
        created = api.get(f"/connections/{connection_id}").json()
    assert created["configuration"]["deviceType"] == "console-sensor"
    assert created["configuration"]["protocol"] == "WSS"
    page.goto(f"{local_run.url}/console/connections")
    expect(page.locator(f'tr[data-connection-id="{connection_id}"]')).to_contain_text("console-created")
    screenshot(page, "connections")
    # delete, after a confirmation page
    page.goto(f"{local_run.url}/console/connections/{connection_id}/delete")
    expect(page.locator("h1")).to_contain_text("Delete “console-created”?")
    page.click("#confirm-delete")
    expect(page).to_have_url(f"{local_run.url}/console/connections")
    expect(page.locator(f'tr[data-connection-id="{connection_id}"]')).to_have_count(0)
    with local_run.api() as api:
        assert api.get(f"/connections/{connection_id}").status_code == 404


def test_uplinks_of_the_local_run_appear_in_the_live_view(page: Page, local_run: LocalRun) -> None:
    log_in(page, local_run)
    page.goto(f"{local_run.url}/console/connections/{local_run.connection_id}/live")
    latest = page.locator("#latest-per-device tbody tr")
    expect(latest.first).to_contain_text(re.compile(r"tpx/things/[0-9A-F]{16}/uplink"))
    expect(latest.first.locator("pre")).to_contain_text('"DevEUI"')
    newest = latest.first.locator("pre")
    expect(newest).not_to_have_text(newest.inner_text())  # new uplinks keep arriving (new Time, FCntUp)
    page.goto(f"{local_run.url}/console/connections/{local_run.connection_id}")
    expect(page.locator("#published")).not_to_have_text("0")
    expect(page.locator("#pool-state")).to_have_text("OPENED")
    expect(page.locator("#routes")).to_contain_text(f"/connections/{local_run.connection_id}/uplinks/thingpark")
    if os.environ.get("CONSOLE_SCREENSHOTS"):
        page.wait_for_timeout(40_000)  # the chart fills while the page is open
    screenshot(page, "dashboard")


def test_a_test_downlink_is_sent_and_its_feedback_appears(page: Page, local_run: LocalRun) -> None:
    log_in(page, local_run)
    page.goto(f"{local_run.url}/console/connections/{local_run.connection_id}/live")
    page.fill("#devEui", "70b3d57ed00000ff")
    page.fill("#payloadHex", "0102")
    page.fill("#fPort", "5")
    page.click("#send-downlink")
    correlation = page.locator("#sent-correlation")
    expect(correlation).to_have_text(re.compile(r"console-[0-9a-f]{8}"))
    correlation_id = correlation.inner_text()
    sent = page.locator("#feedback-messages tr", has_text="70B3D57ED00000FF/downlink/sent")
    expect(sent.filter(has_text=correlation_id)).to_have_count(1)
    expect(sent.filter(has_text=correlation_id).locator("pre")).to_contain_text('"status": "sent"')
    screenshot(page, "live")


@pytest.fixture
def ssl_connection(local_run: LocalRun) -> Iterator[str]:
    """An SSL connection with its own certificate, to the run's broker, created through the Connections API."""
    pki = DevPki(local_run.state_dir / "pki")
    pair = pki.client("console-ssl")
    body = {
        "connectorId": "actility-aws-iot",
        "name": "console-ssl",
        "configuration": {
            "deviceType": "console-sensor",
            "region": SSL_REGION,
            "certificateId": f"arn:aws:iot:{SSL_REGION}:{SSL_ACCOUNT}:cert/{'cd' * 32}",
            "certificate": pair.cert_pem,
            "privateKey": pair.key_pem,
            "clientIdPrefix": "console-ssl",
            "poolSize": 1,
            "uplinkRatePerSec": 100,
            "broker": {"host": "127.0.0.1", "port": local_run.ports["tls"], "caCertificate": pki.ca.cert_pem},
        },
    }
    with local_run.api() as api:
        response = api.post("/connections", json=body)
        assert response.status_code == 201, response.text
        connection_id = str(response.json()["connectionId"])
        yield connection_id
        api.delete(f"/connections/{connection_id}")


def test_switching_ssl_wss_ssl_keeps_the_certificate(page: Page, local_run: LocalRun, ssl_connection: str) -> None:
    log_in(page, local_run)
    edit = f"{local_run.url}/console/connections/{ssl_connection}/edit"
    page.goto(edit)
    certificate_group = page.locator("#group-certificate")
    certificate_id = page.locator('[name="configuration.certificateId"]')
    arn = f"arn:aws:iot:{SSL_REGION}:{SSL_ACCOUNT}:cert/{'cd' * 32}"
    expect(certificate_group).to_be_visible()
    expect(certificate_id).to_have_value(arn)
    expect(page.locator('[name="configuration.privateKey"]')).to_have_value("")  # never rendered back
    expect(page.locator('[name="configuration.privateKey"]')).to_have_attribute("placeholder", re.compile("stored"))
    page.select_option('[name="configuration.protocol"]', "WSS")
    expect(certificate_group).to_be_hidden()
    page.select_option('[name="configuration.protocol"]', "SSL")
    expect(certificate_group).to_be_visible()
    expect(certificate_id).to_have_value(arn)
    # saved as WSS, the stored certificate stays; back to SSL without typing it again
    page.select_option('[name="configuration.protocol"]', "WSS")
    page.click("#save")
    expect(page.locator("h1")).to_contain_text("console-ssl")
    # WSS to the broker's mTLS port cannot work: the dashboard says why
    expect(page.locator("#clients")).to_contain_text(f"at 127.0.0.1:{local_run.ports['tls']}")
    expect(page.locator("#state-reason")).to_contain_text("console-ssl-")
    expect(page.locator("#pool-state")).not_to_have_text("OPENED")
    with local_run.api() as api:
        assert api.get(f"/connections/{ssl_connection}").json()["status"]["protocol"] == "WSS"
    page.goto(edit)
    expect(certificate_group).to_be_hidden()
    page.select_option('[name="configuration.protocol"]', "SSL")
    expect(certificate_group).to_be_visible()
    expect(certificate_id).to_have_value(arn)
    page.click("#save")
    expect(page.locator("h1")).to_contain_text("console-ssl")
    with local_run.api() as api:
        status = api.get(f"/connections/{ssl_connection}").json()["status"]
    assert status["protocol"] == "SSL"
    assert status["certificateId"] == arn
    expect(page.locator("#pool-state")).to_have_text("OPENED")  # the kept certificate connects
