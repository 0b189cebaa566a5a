"""AWS IoT's quotas have one home (bridge_domain/quotas.py): no product module writes them again."""

from __future__ import annotations

import re
from pathlib import Path

import pytest

from bridge_domain import quotas
from bridge_domain.connection import MAX_PER_CLIENT_RATE_PER_SEC
from bridge_domain.exceptions import TopicError
from bridge_domain.topics import check_topic

ROOT = Path(__file__).parents[3]
PRODUCT = ("bridge_container", "bridge_domain", "lambdas", "stacks")
# The quota values as they were written before they had a home, with what each stood for.
REPEATS = {
    r"=\s*15\.0\b": "a control-plane TPS quota",
    r"128\s*\*\s*1024": "the payload limit",
    r"512\s*\*\s*1024": "the bytes per second per connection",
}


@pytest.mark.parametrize(("pattern", "fact"), REPEATS.items())
def test_no_product_module_repeats_a_quota(pattern: str, fact: str) -> None:
    repeats = [
        f"{path.relative_to(ROOT)}:{number}"
        for package in PRODUCT
        for path in (ROOT / package).rglob("*.py")
        if path.name != "quotas.py" and "local" not in path.parts
        for number, line in enumerate(path.read_text().splitlines(), 1)
        if re.search(pattern, line)
    ]
    assert repeats == [], f"{fact} written again; import it from bridge_domain.quotas"


def test_the_model_and_the_topics_use_the_quotas() -> None:
    assert MAX_PER_CLIENT_RATE_PER_SEC == quotas.PUBLISHES_PER_SEC_PER_CONNECTION == 100
    check_topic("a" * quotas.MAX_TOPIC_BYTES)  # at the limit: accepted
    with pytest.raises(TopicError, match="longer than 256 bytes"):
        check_topic("a" * (quotas.MAX_TOPIC_BYTES + 1))
    check_topic("/".join(["a"] * (quotas.MAX_TOPIC_SLASHES + 1)))
    with pytest.raises(TopicError, match="more than 7 slashes"):
        check_topic("/".join(["a"] * (quotas.MAX_TOPIC_SLASHES + 2)))
