"""Thing names, client IDs and the account-visible resource names."""

from __future__ import annotations

import pytest

from bridge_domain.exceptions import InvalidDevEuiError
from bridge_domain.naming import MAX_CLIENT_ID_BYTES, ResourceNames, client_id, suffix_for_region, thing_name


def test_thing_is_named_after_the_normalised_dev_eui() -> None:
    assert thing_name("70b3d57ed0000001") == "70B3D57ED0000001"
    with pytest.raises(InvalidDevEuiError):
        thing_name("70b3d57ed000000/")


def test_client_ids_are_unique_per_task_and_slot() -> None:
    ids = {client_id("iot-bridge", task, slot) for task in ("task-a", "task-b") for slot in range(10)}
    assert len(ids) == 20


def test_long_task_ids_are_digested_to_fit_128_bytes() -> None:
    first = client_id("p" * 64, "t" * 200, 9)
    second = client_id("p" * 64, "t" * 199 + "u", 9)
    assert len(first.encode()) <= MAX_CLIENT_ID_BYTES
    assert first != second


def test_default_names_are_the_enebular_names() -> None:
    names = ResourceNames()
    assert (names.status_push_role, names.status_push_topic, names.devicestate_push_topic) == (
        "enebular_status_push_role",
        "enebular_status_push_sns",
        "enebular_devicestate_push_sns",
    )
    assert (names.shadow_update_rule, names.status_push_rule, names.devicestate_push_rule) == (
        "enebular_shadow_update",
        "enebular_status_push_rule",
        "enebular_devicestate_push_rule",
    )


def test_second_region_suffix_keeps_names_valid() -> None:
    names = ResourceNames(suffix_for_region("eu-west-1"))
    assert names.status_push_role == "enebular_status_push_role_eu_west_1"
    assert names.status_push_rule.replace("_", "").isalnum()


@pytest.mark.parametrize("suffix", ["-x", "a b", "x" * 25])
def test_invalid_suffix_is_refused(suffix: str) -> None:
    with pytest.raises(ValueError, match="suffix"):
        ResourceNames(suffix)
