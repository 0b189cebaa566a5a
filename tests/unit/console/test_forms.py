"""The connection form: generated from the model, secrets write-only, field paths mapped back to inputs."""

from __future__ import annotations

from typing import Any

import pytest

from bridge_container.connections.catalog import validate_body
from bridge_container.connections.documents import masked_document
from bridge_container.connections.exceptions import InvalidConnectionError
from bridge_container.console import forms
from bridge_domain.secrets import MASK
from devtools.pki import CertPair, DevPki
from tests.unit.connections.support import AS_KEY, certificate_arn


@pytest.fixture(scope="module")
def cert(tmp_path_factory: pytest.TempPathFactory) -> CertPair:
    return DevPki(tmp_path_factory.mktemp("pki")).client("console-form")


def inputs() -> dict[str, forms.FormField]:
    return {entry.name: entry for group in forms.FORM for entry in group.fields}


def filled_form(cert: CertPair, **changes: str) -> dict[str, str]:
    form = forms.default_values()
    form.update(
        {
            "name": "form test",
            "configuration.deviceType": "sensor",
            "configuration.region": "eu-central-1",
            "configuration.accountPrefix": "a2plmnutiyt-ats",
            "configuration.certificateId": certificate_arn(),
            "configuration.certificate": cert.cert_pem,
            "configuration.privateKey": cert.key_pem,
            "lns.thingpark.asKey": AS_KEY,
        }
    )
    form.update(changes)
    return form


def test_every_configuration_field_of_the_model_has_an_input() -> None:
    names = set(inputs())
    assert {"configuration.region", "configuration.protocol", "configuration.poolSize", "broker.host"} <= names
    assert {"lns.thingpark.asKey", "lns.chirpstack.ingressToken", "lns.tts.applicationId"} <= names
    assert inputs()["configuration.region"].required
    assert not inputs()["configuration.accountPrefix"].required
    assert inputs()["configuration.protocol"].choices == ("SSL", "WSS")
    assert inputs()["configuration.poolSize"].kind == "number"
    assert inputs()["configuration.downlinkEnabled"].kind == "checkbox"
    assert {name for name, entry in inputs().items() if entry.secret} >= {
        "configuration.secretAccessKey",
        "configuration.certificate",
        "configuration.privateKey",
        "lns.thingpark.asKey",
        "lns.tts.apiKey",
    }


def test_a_filled_form_makes_a_body_the_api_accepts(cert: CertPair) -> None:
    built = forms.build_body(filled_form(cert), None)
    connection = validate_body(built.body)
    assert connection.name == "form test"
    assert connection.configuration.pool_size == 10
    assert [entry.kind for entry in connection.configuration.lns] == ["thingpark"]


def test_a_missing_required_field_is_reported_on_its_input(cert: CertPair) -> None:
    built = forms.build_body(filled_form(cert, **{"configuration.region": ""}), None)
    with pytest.raises(InvalidConnectionError) as caught:
        validate_body(built.body)
    by_input, general = forms.place_issues(list(caught.value.issues), built)
    assert list(by_input) == ["configuration.region"]
    assert general == []


def test_an_error_inside_an_lns_entry_is_placed_on_that_entry_whatever_its_position(cert: CertPair) -> None:
    form = filled_form(cert, **{"lns.tts.enabled": "on", "lns.tts.apiUrl": "https://tts.example.com"})
    built = forms.build_body(form, None)
    with pytest.raises(InvalidConnectionError) as caught:
        validate_body(built.body)
    by_input, _general = forms.place_issues(list(caught.value.issues), built)
    assert set(by_input) == {"lns.tts.ingressToken", "lns.tts.applicationId"}


def stored_document(cert: CertPair) -> dict[str, Any]:
    return masked_document(validate_body(forms.build_body(filled_form(cert), None).body))


def test_an_edit_form_shows_no_secret_and_knows_which_are_stored(cert: CertPair) -> None:
    stored = stored_document(cert)
    values = forms.values_of(stored)
    assert values["configuration.certificateId"] == certificate_arn()
    assert values["configuration.region"] == "eu-central-1"
    shown = "".join(values.values())
    assert AS_KEY not in shown
    assert "PRIVATE KEY" not in shown
    assert "CERTIFICATE" not in shown
    assert forms.stored_secrets(stored) >= {
        "configuration.certificate",
        "configuration.privateKey",
        "lns.thingpark.asKey",
    }


def test_a_blank_secret_in_an_edit_keeps_the_stored_one_and_a_typed_one_replaces_it(cert: CertPair) -> None:
    stored = stored_document(cert)
    edit = forms.values_of(stored)
    kept = forms.build_body(edit, stored).body
    assert kept["configuration"]["lns"][0]["asKey"] == MASK
    assert kept["configuration"]["privateKey"] == MASK
    replaced = forms.build_body({**edit, "lns.thingpark.asKey": "ff" * 16}, stored).body
    assert replaced["configuration"]["lns"][0]["asKey"] == "ff" * 16


def test_switching_to_wss_keeps_the_certificate_for_a_later_switch_back(cert: CertPair) -> None:
    stored = stored_document(cert)
    wss = forms.build_body({**forms.values_of(stored), "configuration.protocol": "WSS"}, stored).body
    assert wss["configuration"]["certificateId"] == certificate_arn()
    assert wss["configuration"]["certificate"] == MASK  # filled from the store by the catalog


def test_an_unchecked_lns_is_left_out_and_an_unchecked_box_is_false(cert: CertPair) -> None:
    form = filled_form(cert, **{"lns.chirpstack.apiUrl": "https://cs.example.com/api"})
    form.pop("configuration.downlinkEnabled", None)
    body = forms.build_body(form, None).body
    assert [entry["kind"] for entry in body["configuration"]["lns"]] == ["thingpark"]
    assert body["configuration"]["downlinkEnabled"] is False


def test_an_edit_form_keeps_the_event_switches_and_the_numeric_choices(cert: CertPair) -> None:
    form = filled_form(
        cert,
        **{
            "events.join": "",
            "events.log": "on",
            "events.topicPattern": "ev/{DevEUI}/{Event}",
            "configuration.uplinkQos": "1",
        },
    )
    stored = masked_document(validate_body(forms.build_body(form, None).body))
    assert stored["configuration"]["events"]["topicPattern"] == "ev/{DevEUI}/{Event}"
    again = forms.build_body(forms.values_of(stored), stored).body["configuration"]
    events = again["events"]
    assert (events["join"], events["log"], events["status"]) == (False, True, True)
    assert events["topicPattern"] == "ev/{DevEUI}/{Event}"
    assert again["uplinkQos"] == 1
