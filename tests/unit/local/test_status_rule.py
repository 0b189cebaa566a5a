"""The local status rule reads the enebular connected flag where the deployment's rule SQL does."""

from __future__ import annotations

import pytest

from devtools.status_rule import connected_flag


@pytest.mark.parametrize(
    ("document", "flag"),
    [
        ({"state": {"reported": {"enebular": {"awsiot": {"connected": True}}}}}, True),
        ({"state": {"reported": {"enebular": {"awsiot": {"connected": False}}}}}, False),
        ({"state": {"reported": {"enebular": {"awsiot": {}}}}}, None),
        ({"state": {"desired": {"enebular": {"awsiot": {"connected": True}}}}}, None),
        ({"state": {"reported": {"enebular": "not an object"}}}, None),
        ({}, None),
    ],
    ids=["connected", "disconnected", "no-flag", "desired-only", "not-an-object", "empty"],
)
def test_the_flag_is_state_reported_enebular_awsiot_connected(document: dict[str, object], flag: object) -> None:
    assert connected_flag(document) == flag
