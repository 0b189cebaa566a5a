"""The per-test check on the stand-in's counters: differences between readings, failing or reporting a test."""

from __future__ import annotations

from dataclasses import dataclass, field
from typing import Any

import pytest

from devtools.iotcore.client import Violations
from tests import aws_rules

BEFORE = Violations(2, {"publish_rate": 2}, {"bridge-0": {"publish_rate": 2}})
AFTER = Violations(
    5,
    {"publish_rate": 4, "connect_rate": 1},
    {"bridge-0": {"publish_rate": 2}, "bridge-1": {"publish_rate": 2, "connect_rate": 1}},
)


@dataclass
class FakeItem:
    """What ``judge`` reads of a pytest item."""

    marker: Any = None
    nodeid: str = "tests/test_x.py::test_y"
    config: Any = field(default_factory=lambda: type("Config", (), {"stash": pytest.Stash()})())

    def get_closest_marker(self, name: str) -> Any:
        return self.marker if name == aws_rules.KNOWN_MARKER else None


def test_since_keeps_only_what_grew() -> None:
    grown = AFTER.since(BEFORE)
    assert grown == Violations(
        3, {"publish_rate": 2, "connect_rate": 1}, {"bridge-1": {"publish_rate": 2, "connect_rate": 1}}
    )
    assert "bridge-1: connect_rate 1, publish_rate 2" in grown.describe()
    assert AFTER.since(AFTER).describe() == "none"


def test_a_test_with_violations_fails_naming_reasons_and_clients() -> None:
    with pytest.raises(AssertionError, match=r"connect_rate 1.*bridge-1"):
        aws_rules.judge(FakeItem(), AFTER.since(BEFORE))  # type: ignore[arg-type]


def test_a_test_without_violations_passes() -> None:
    aws_rules.judge(FakeItem(), Violations())  # type: ignore[arg-type]


def test_a_test_marked_known_is_reported_not_failed() -> None:
    item = FakeItem(marker=pytest.mark.aws_violations_known("the limiter runs at exactly 100/s").mark)
    aws_rules.judge(item, AFTER.since(BEFORE))  # type: ignore[arg-type]
    [line] = aws_rules.summary_lines(item.config)
    assert line.startswith("tests/test_x.py::test_y: 3 (connect_rate 1, publish_rate 2)")
    assert line.endswith("[the limiter runs at exactly 100/s]")
