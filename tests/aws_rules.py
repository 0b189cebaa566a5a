"""A test fails when AWS IoT Core would have discarded or refused something during it.

The shared broker fixtures (``broker``, ``private_broker``) put the enforcing stand-in in front of mosquitto. Around
each test's call its counters are read; when they grew, the test fails with the reasons and client IDs. A test that
is known to violate today carries ``@pytest.mark.aws_violations_known("why")``: its violations are reported in the
terminal summary instead of failing it. Tests that violate on purpose use a broker fixture of their own.
"""

from __future__ import annotations

from dataclasses import dataclass

import httpx
import pytest

from devtools.broker import LocalBroker
from devtools.iotcore.client import Violations

KNOWN_MARKER = "aws_violations_known"
CHECKED_FIXTURES = ("broker", "private_broker")


@dataclass(frozen=True, slots=True)
class KnownViolation:
    test: str
    why: str
    found: Violations


KNOWN: pytest.StashKey[list[KnownViolation]] = pytest.StashKey()


def checked_brokers(item: pytest.Item) -> list[LocalBroker]:
    funcargs = getattr(item, "funcargs", {})
    found = [funcargs.get(name) for name in CHECKED_FIXTURES]
    return [broker for broker in found if isinstance(broker, LocalBroker) and broker.stand_in is not None]


def read(brokers: list[LocalBroker]) -> list[Violations]:
    readings = []
    for broker in brokers:
        assert broker.stand_in is not None
        readings.append(broker.stand_in.violations())
    return readings


def grown(brokers: list[LocalBroker], before: list[Violations]) -> Violations:
    """What the brokers counted since ``before``, summed."""
    by_reason: dict[str, int] = {}
    by_client: dict[str, dict[str, int]] = {}
    for after, earlier in zip(read(brokers), before, strict=True):
        new = after.since(earlier)
        for reason, count in new.by_reason.items():
            by_reason[reason] = by_reason.get(reason, 0) + count
        for client, reasons in new.by_client.items():
            mine = by_client.setdefault(client, {})
            for reason, count in reasons.items():
                mine[reason] = mine.get(reason, 0) + count
    return Violations(sum(by_reason.values()), by_reason, by_client)


def judge(item: pytest.Item, found: Violations) -> None:
    """Fail the test on violations, unless it is marked as known to violate (then remember them for the summary)."""
    marker = item.get_closest_marker(KNOWN_MARKER)
    if marker is not None:
        why = str(marker.args[0]) if marker.args else ""
        item.config.stash.setdefault(KNOWN, []).append(KnownViolation(item.nodeid, why, found))
        return
    if found.total:
        raise AssertionError(f"AWS IoT Core would have discarded or refused: {found.describe()}")


def annotate(item: pytest.Item, exc: BaseException, brokers: list[LocalBroker], before: list[Violations]) -> None:
    """A test that failed anyway: its violations go into the failure's notes (they often explain it)."""
    try:
        found = grown(brokers, before)
    except httpx.HTTPError:
        return  # a broker the test stopped
    if item.get_closest_marker(KNOWN_MARKER) is not None:
        judge(item, found)
    elif found.total:
        exc.add_note(f"AWS IoT Core would have discarded or refused: {found.describe()}")


def summary_lines(config: pytest.Config) -> list[str]:
    return [
        f"{known.test}: {known.found.describe() if known.found.total else 'none this run'}  [{known.why}]"
        for known in config.stash.get(KNOWN, [])
    ]
