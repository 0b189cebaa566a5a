"""Base of the models that validate a process's environment (the container's and each Lambda's), once at start."""

from __future__ import annotations

import os
from collections.abc import Mapping
from typing import Self

from pydantic import BaseModel, ConfigDict


class EnvironmentModel(BaseModel):
    """A frozen view of the environment: each field's alias is the name of the variable it is read from.

    Variables the model does not know are ignored: a process's environment holds far more than its own settings.
    """

    model_config = ConfigDict(frozen=True, extra="ignore")

    @classmethod
    def variable_names(cls) -> frozenset[str]:
        """The names of the variables this model reads."""
        return frozenset(field.alias for field in cls.model_fields.values() if field.alias is not None)

    @classmethod
    def from_environ(cls, environ: Mapping[str, str] = os.environ) -> Self:
        """Validate the variables of ``environ`` this model reads; a ``ValidationError`` lists every problem."""
        return cls.model_validate({name: environ[name] for name in cls.variable_names() if name in environ})
