"""The self-test's synthetic uplinks (each accepted by the bridge's own parsers and checks) and its usage errors."""

from __future__ import annotations

import asyncio
import datetime as dt
import io
from pathlib import Path
from urllib.parse import urlsplit

import orjson
import pytest

from bridge_container.ingress import chirpstack, thingpark, tts
from bridge_container.ingress.exceptions import UnauthorizedError
from bridge_container.mqtt.port import InboundMessage
from cli.selftest import (
    SECRET_ENV,
    Listener,
    Lns,
    SelfTestError,
    Target,
    downlink_feedback,
    main,
    run_selftest,
    uplink_request,
)
from devtools.ports import free_port

AS_KEY = "0123456789abcdef0123456789abcdef"
DEV_EUI = "5E1F7E5700000001"


def target(lns: Lns, secret: str | None = AS_KEY) -> Target:
    return Target(
        ingress_url="https://bridge.example.com/",
        lns=lns,
        secret=secret,
        iot_endpoint="example-ats.iot.eu-central-1.amazonaws.com",
        region="eu-central-1",
        application_id="app-1",
    )


def test_the_thingpark_uplink_carries_a_token_the_bridge_verifies_with_the_as_key() -> None:
    url, body, _ = uplink_request(target("thingpark"), DEV_EUI, 4242)
    parts = urlsplit(url)
    assert parts.path == "/uplinks/thingpark"
    inner = orjson.loads(body)[thingpark.UPLINK_ROOT]
    record = thingpark.parse_uplink(orjson.loads(body), body)
    assert (record.dev_eui, record.fcnt_up) == (DEV_EUI, 4242)
    now = dt.datetime.now(dt.UTC)
    thingpark.verify_token(thingpark.UPLINK_ROOT, inner, parts.query.encode(), AS_KEY, 60, now)
    with pytest.raises(UnauthorizedError):
        thingpark.verify_token(thingpark.UPLINK_ROOT, inner, parts.query.encode(), "f" * 32, 60, now)


@pytest.mark.parametrize("lns", ["chirpstack", "tts"])
def test_chirpstack_and_tts_uplinks_parse_and_carry_the_ingress_token(lns: Lns) -> None:
    url, body, headers = uplink_request(target(lns, secret="ingress-token"), DEV_EUI, 7)
    assert urlsplit(url).path == f"/uplinks/{lns}"
    assert headers["Authorization"] == "Bearer ingress-token"
    document = orjson.loads(body)
    record = chirpstack.parse_up(document, body) if lns == "chirpstack" else tts.parse_uplink(document, body)
    assert (record.dev_eui, record.fcnt_up) == (DEV_EUI, 7)


def test_the_target_repr_leaves_the_secret_out() -> None:
    assert AS_KEY not in repr(target("thingpark"))


@pytest.mark.parametrize(
    ("argv", "message"),
    [
        (["--iot-endpoint", "x-ats.iot.eu-central-1.amazonaws.com"], "missing --ingress-url"),
        (
            ["--ingress-url", "https://b", "--iot-endpoint", "e", "--region", "eu-central-1", "--lns", "tts"],
            "--application-id",
        ),
        (
            ["--ingress-url", "https://b", "--iot-endpoint", "e", "--region", "eu-central-1", "--dev-eui", "12"],
            "DevEUI must be 16 hexadecimal digits",
        ),
        (["--ingress-url", "https://b", "--iot-endpoint", "e", "--timeout", "0"], "--timeout must be > 0"),
    ],
    ids=["no-ingress", "tts-without-application", "bad-dev-eui", "bad-timeout"],
)
def test_bad_usage_exits_2_naming_the_option(
    argv: list[str], message: str, capsys: pytest.CaptureFixture[str], monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.setenv(SECRET_ENV, AS_KEY)
    assert main(argv) == 2
    error = capsys.readouterr().err
    assert message in error
    assert AS_KEY not in error


def test_local_without_a_running_make_run_exits_2(tmp_path: Path, capsys: pytest.CaptureFixture[str]) -> None:
    assert main(["--local", str(tmp_path)]) == 2
    assert "is make run running with it?" in capsys.readouterr().err


def test_an_unreachable_iot_endpoint_fails_the_first_step_and_skips_the_rest() -> None:
    unreachable = Target(
        ingress_url="http://127.0.0.1:9",
        lns="thingpark",
        secret=AS_KEY,
        iot_endpoint="127.0.0.1",
        iot_port=free_port(),  # nothing listens there
        region="eu-central-1",
        timeout_secs=1.5,
    )
    out = io.StringIO()
    assert asyncio.run(run_selftest(unreachable, out)) == 1
    lines = out.getvalue().splitlines()
    assert lines[1].split()[0] == "FAIL"
    assert "connect to AWS IoT Core over WSS: not connected after 1.5s" in lines[1]
    assert lines[2].strip().startswith("check: the IoT endpoint")
    assert [line.split()[0] for line in lines[3:8]] == ["skip"] * 5
    assert "cleanup: nothing to delete" in lines[8]
    assert lines[9].startswith("FAILED in ")
    assert AS_KEY not in out.getvalue()


class AnsweringListener(Listener):
    """Answers every downlink with one feedback document of the test's choice."""

    def __init__(self, feedback: dict[str, str]) -> None:  # no MQTT client: nothing leaves the process
        self.feedback = feedback
        self.messages = []

    async def publish(self, topic: str, payload: bytes) -> None:
        answer = {**self.feedback, "correlationId": orjson.loads(payload)["correlationId"]}
        self.messages.append(InboundMessage(f"{topic}/{answer['status']}", orjson.dumps(answer)))


@pytest.mark.parametrize(
    ("feedback", "shown"),
    [
        ({"status": "queued"}, "queued for"),
        ({"status": "failed", "reason": "lns_rejected"}, "failed (lns_rejected) for"),
    ],
)
def test_a_network_servers_answer_passes_the_downlink_step(feedback: dict[str, str], shown: str) -> None:
    result = asyncio.run(downlink_feedback(target("thingpark"), AnsweringListener(feedback), "t/x/down", DEV_EUI))
    assert result.startswith(shown)


def test_a_downlink_the_bridge_could_not_hand_over_fails_the_step_naming_the_lns_settings() -> None:
    listener = AnsweringListener({"status": "failed", "reason": "lns_unavailable", "detail": "connect refused"})
    with pytest.raises(SelfTestError) as failure:
        asyncio.run(downlink_feedback(target("thingpark"), listener, "t/x/down", DEV_EUI))
    assert failure.value.problem == "the bridge could not hand the downlink to the network server " + (
        "(lns_unavailable: connect refused)"
    )
    assert "downlinkUrl" in failure.value.check


def test_without_a_region_it_exits_2_saying_how_to_give_one(
    tmp_path: Path, capsys: pytest.CaptureFixture[str], monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.delenv("AWS_DEFAULT_REGION", raising=False)
    monkeypatch.delenv("AWS_REGION", raising=False)
    monkeypatch.setenv("AWS_CONFIG_FILE", str(tmp_path / "no-config"))
    assert main(["--ingress-url", "https://b", "--iot-endpoint", "e"]) == 2
    assert "no AWS region: pass --region" in capsys.readouterr().err
