"""The pydantic base of every document users write: connection files, their LNS entries and deployment sections."""

from __future__ import annotations

from pydantic import BaseModel, ConfigDict
from pydantic.alias_generators import to_camel


class DocumentModel(BaseModel):
    """camelCase in JSON (the seed's field names), snake_case in code; frozen; unknown fields refused.

    Inputs are hidden in errors because a connection document carries secrets (AS keys, tokens, private keys).
    """

    model_config = ConfigDict(
        alias_generator=to_camel,
        validate_by_name=True,
        validate_by_alias=True,
        serialize_by_alias=True,
        frozen=True,
        extra="forbid",
        hide_input_in_errors=True,
    )
