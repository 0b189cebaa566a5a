"""Base of the models that validate a process's environment (the container's and each Lambda's), once at start."""

from __future__ import annotations

import os
from collections.abc import Mapping
from typing import Self

from pydantic import BaseModel, ConfigDict


class EnvironmentModel(BaseModel):
    """A frozen view of the environment: each field's alias is the name of the variable it is read from.

    Precedence, written here once: an explicit argument (not ``None``) > the variable (not empty: CloudFormation
    cannot omit a variable conditionally, so an empty one means unset) > the field's default. Variables the model
    does not read are ignored: a process's environment holds far more than its own settings.
    """

    model_config = ConfigDict(frozen=True, extra="ignore")

    @classmethod
    def variable_names(cls) -> frozenset[str]:
        """The names of the variables this model reads."""
        return frozenset(field.alias for field in cls.model_fields.values() if field.alias is not None)

    @classmethod
    def variables_of(cls, environ: Mapping[str, str], **explicit: object) -> dict[str, object]:
        """The input of this model, keyed by variable name: explicit arguments (by field name) over ``environ``."""
        values: dict[str, object] = {name: environ[name] for name in cls.variable_names() if environ.get(name)}
        for field_name, value in explicit.items():
            field = cls.model_fields.get(field_name)
            if field is None or field.alias is None:
                raise TypeError(f"{cls.__name__} has no setting {field_name!r}")
            if value is not None:
                values[field.alias] = value
        return values

    @classmethod
    def from_environ(cls, environ: Mapping[str, str] = os.environ, **explicit: object) -> Self:
        """The validated settings; a pydantic ``ValidationError`` lists every problem, located by variable name."""
        return cls.model_validate(cls.variables_of(environ, **explicit))
