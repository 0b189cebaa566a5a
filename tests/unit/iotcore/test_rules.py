"""AWS IoT Core's rules as the stand-in keeps them, on a controllable clock."""

from __future__ import annotations

import pytest

from bridge_domain import quotas
from devtools.iotcore.rules import Action, ConnectionAccount, Direction, IotCoreRules, PublishVerdict, Reason

INBOUND, OUTBOUND = Direction.INBOUND, Direction.OUTBOUND


class Clock:
    def __init__(self) -> None:
        self.now = 100.0

    def __call__(self) -> float:
        return self.now


@pytest.fixture
def clock() -> Clock:
    return Clock()


@pytest.fixture
def rules(clock: Clock) -> IotCoreRules:
    return IotCoreRules(clock=clock)


def connected(rules: IotCoreRules, client_id: str, *, enforced: bool = True) -> ConnectionAccount:
    account = rules.open_connection(enforced=enforced)
    assert rules.connect(account, client_id, len(client_id), 5).accepted
    return account


def publish(
    rules: IotCoreRules, account: ConnectionAccount, topic: str = "t/1", payload: int = 10, *, out: bool = False
) -> PublishVerdict:
    return rules.publish(account, OUTBOUND if out else INBOUND, topic, len(topic.encode()), payload)


def test_the_limits_are_the_quotas() -> None:
    limits = IotCoreRules().limits
    assert limits.publishes_per_window == quotas.PUBLISHES_PER_SEC_PER_CONNECTION
    assert limits.max_topic_bytes == quotas.MAX_TOPIC_BYTES
    assert limits.max_payload_bytes == quotas.MAX_PAYLOAD_BYTES
    assert limits.max_subscriptions == quotas.MAX_SUBSCRIPTIONS_PER_CONNECTION


def test_a_burst_of_150_discards_exactly_the_50_over_the_limit(rules: IotCoreRules) -> None:
    account = connected(rules, "burst")
    actions = [publish(rules, account).action for _ in range(150)]
    assert actions.count(Action.FORWARD) == 100
    assert actions[100:] == [Action.DISCARD] * 50
    assert rules.violations.to_json()["by_client"] == {"burst": {"publish_rate": 50}}


def test_the_window_rolls_rather_than_resetting_on_the_second(rules: IotCoreRules, clock: Clock) -> None:
    account = connected(rules, "rolling")
    clock.now = 100.9
    assert all(publish(rules, account).action is Action.FORWARD for _ in range(100))
    clock.now = 101.1  # a new calendar second, but the 100 above are 0.2 s old
    assert publish(rules, account).action is Action.DISCARD
    clock.now = 101.9  # exactly one second after them: they have left the window
    assert publish(rules, account).action is Action.FORWARD


def test_inbound_and_outbound_share_one_budget(rules: IotCoreRules) -> None:
    account = connected(rules, "both-ways")
    for _ in range(60):
        assert publish(rules, account).action is Action.FORWARD
    outbound = [publish(rules, account, out=True).action for _ in range(60)]
    assert outbound.count(Action.FORWARD) == 40
    assert rules.violations.by_reason == {"publish_rate": 20}


def test_discarded_publishes_do_not_use_the_budget(rules: IotCoreRules, clock: Clock) -> None:
    account = connected(rules, "steady")
    for step in range(300):  # 150 offered a second for 2 s: 100 a second pass
        clock.now = 100.0 + step / 150
        publish(rules, account)
    assert rules.violations.by_reason["publish_rate"] == pytest.approx(100, abs=2)
    assert account.offered_window.most in (150, 151)  # 151 when float steps put one more inside a window


def test_connections_have_budgets_of_their_own(rules: IotCoreRules) -> None:
    first, second = connected(rules, "a"), connected(rules, "b")
    for _ in range(100):
        publish(rules, first)
        publish(rules, second)
    assert rules.violations.total == 0
    assert rules.report()["windows"]["max_1s_aggregate"] == 200


def test_a_pools_clients_are_aggregated_apart_from_other_clients(rules: IotCoreRules) -> None:
    pool = [connected(rules, f"iot-bridge-bench-{slot}") for slot in range(3)]
    application = connected(rules, "application-bench-0")
    for account in pool:
        for _ in range(30):
            publish(rules, account)
    for _ in range(20):
        publish(rules, application, out=True)
    windows = rules.report()["windows"]
    assert windows["max_1s_aggregate_by_client_group"] == {"iot-bridge-bench": 90, "application-bench": 20}
    assert windows["max_1s_aggregate"] == 110


def test_reset_keeps_grouping_open_connections(rules: IotCoreRules) -> None:
    account = connected(rules, "pool-task-0")
    publish(rules, account)
    rules.reset()
    publish(rules, account)
    assert rules.report()["windows"]["max_1s_aggregate_by_client_group"] == {"pool-task": 1}


@pytest.mark.parametrize(
    ("topic", "payload", "reason"),
    [
        ("t/" + "x" * 255, 1, Reason.TOPIC_TOO_LONG),
        ("a/b/c/d/e/f/g/h/i", 1, Reason.TOPIC_TOO_DEEP),
        ("t/1", quotas.MAX_PAYLOAD_BYTES + 1, Reason.PAYLOAD_TOO_LARGE),
        ("$aws/events/presence/connected/x", 1, Reason.RESERVED_TOPIC),
        ("$aws/things/x/tunnels/notify", 1, Reason.RESERVED_TOPIC),
        ("$SYS/broker/uptime", 1, Reason.RESERVED_TOPIC),
    ],
)
def test_a_publish_aws_refuses_closes_the_connection(
    rules: IotCoreRules, topic: str, payload: int, reason: Reason
) -> None:
    verdict = publish(rules, connected(rules, "refused"), topic, payload)
    assert (verdict.action, verdict.reason) == (Action.REJECT, reason)
    assert rules.violations.by_client == {"refused": {reason.value: 1}}


def test_limits_at_their_edge_pass(rules: IotCoreRules) -> None:
    account = connected(rules, "edge")
    assert publish(rules, account, "t/" + "x" * 254).action is Action.FORWARD
    assert publish(rules, account, "a/b/c/d/e/f/g/h").action is Action.FORWARD
    assert publish(rules, account, "t/1", quotas.MAX_PAYLOAD_BYTES).action is Action.FORWARD


@pytest.mark.parametrize(
    "topic",
    [
        "$aws/things/sensor-1/shadow/update",
        "$aws/things/sensor-1/shadow/name/config/get",
        "$aws/things/sensor-1/jobs/start-next",
        "$aws/things/sensor-1/defender/metrics/json",
        "$aws/certificates/create/cbor",
        "$aws/provisioning-templates/fleet/provision/json",
    ],
)
def test_reserved_topics_a_client_may_publish_to_pass(rules: IotCoreRules, topic: str) -> None:
    assert publish(rules, connected(rules, "reserved-ok"), topic).action is Action.FORWARD


def test_basic_ingest_goes_to_the_rule_and_its_prefix_is_not_counted(rules: IotCoreRules) -> None:
    account = connected(rules, "ingest")
    verdict = publish(rules, account, "$aws/rules/store_uplinks/a/b/c/d/e/f/g/h")  # 7 slashes after the prefix
    assert (verdict.action, verdict.rule) == (Action.INGEST, "store_uplinks")
    assert rules.report()["basic_ingest"] == {"store_uplinks": 1}
    assert rules.report()["basic_ingest_topics"] == ["$aws/rules/store_uplinks/a/b/c/d/e/f/g/h"]
    assert publish(rules, account, "$aws/rules/r/a/b/c/d/e/f/g/h/i").reason is Reason.TOPIC_TOO_DEEP
    assert len(rules.report()["basic_ingest_topics"]) == 1


def test_basic_ingest_counts_for_the_rate(rules: IotCoreRules) -> None:
    account = connected(rules, "ingest-rate")
    for _ in range(100):
        publish(rules, account, "$aws/rules/r/t")
    assert publish(rules, account, "t/1").action is Action.DISCARD


def test_the_51st_subscription_is_refused(rules: IotCoreRules) -> None:
    account = connected(rules, "subscriber")
    assert rules.subscribe(account, [f"f/{index}" for index in range(50)]) is None
    assert rules.subscribe(account, ["f/0"]) is None  # the same filter again is not another subscription
    assert rules.subscribe(account, ["f/50"]) is Reason.SUBSCRIPTION_LIMIT
    rules.unsubscribe(account, ["f/0"])
    assert rules.subscribe(account, ["f/50"]) is None


def test_a_second_connect_of_a_client_id_within_a_second_is_refused(rules: IotCoreRules, clock: Clock) -> None:
    connected(rules, "reconnecting")
    clock.now += 0.5
    verdict = rules.connect(rules.open_connection(), "reconnecting", 12, 5)
    assert (verdict.accepted, verdict.reason) == (False, Reason.CONNECT_RATE)
    clock.now += 0.6
    assert rules.connect(rules.open_connection(), "reconnecting", 12, 5).accepted


def test_a_duplicate_client_id_takes_the_older_connection_over(rules: IotCoreRules, clock: Clock) -> None:
    older = connected(rules, "twin")
    clock.now += 2.0
    verdict = rules.connect(rules.open_connection(), "twin", 4, 5)
    assert verdict.accepted
    assert verdict.taken_over is older
    assert rules.violations.by_client == {"twin": {"duplicate_client_id": 1}}


def test_a_client_id_over_128_bytes_is_refused(rules: IotCoreRules) -> None:
    verdict = rules.connect(rules.open_connection(), "x" * 129, 129, 4)
    assert (verdict.accepted, verdict.reason) == (False, Reason.CLIENT_ID_TOO_LONG)


def test_an_unenforced_connection_is_counted_apart_and_nothing_is_dropped(rules: IotCoreRules) -> None:
    account = connected(rules, "audited", enforced=False)
    actions = {publish(rules, account).action for _ in range(150)}
    assert actions == {Action.FORWARD}
    assert rules.violations.total == 0
    assert rules.audited.by_reason == {"publish_rate": 50}


def test_reset_forgets_the_counts(rules: IotCoreRules) -> None:
    account = connected(rules, "reset")
    for _ in range(120):
        publish(rules, account)
    rules.reset()
    report = rules.report()
    assert (report["total"], report["by_reason"], report["windows"]["max_1s_aggregate"]) == (0, {}, 0)


def test_more_than_100_unacknowledged_qos1_publishes_are_counted(rules: IotCoreRules) -> None:
    account = connected(rules, "inflight")
    for packet_id in range(1, quotas.MAX_UNACKED_QOS1_PUBLISHES_PER_CONNECTION + 1):
        rules.qos1_forwarded(account, packet_id)
    assert rules.violations.total == 0
    rules.qos1_acknowledged(account, 1)
    rules.qos1_forwarded(account, 101)  # the acknowledged one made room
    assert rules.violations.total == 0
    rules.qos1_forwarded(account, 102)
    assert rules.violations.to_json()["by_client"] == {"inflight": {"qos1_in_flight": 1}}
