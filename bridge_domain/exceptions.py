"""Exception hierarchy of the shared domain code."""

from __future__ import annotations

from dataclasses import dataclass


class BridgeDomainError(Exception):
    """Base of every error raised by bridge_domain."""


@dataclass(frozen=True, slots=True)
class FieldIssue:
    """One validation problem, located by its path in the JSON document (``configuration.region``)."""

    path: str
    message: str

    def __str__(self) -> str:
        return f"{self.path}: {self.message}"


class ConfigError(BridgeDomainError):
    """A connection configuration is invalid; ``issues`` lists every problem found, not just the first."""

    def __init__(self, issues: list[FieldIssue], source: str = "configuration") -> None:
        self.issues = tuple(issues)
        self.source = source
        lines = "\n".join(f"  - {issue}" for issue in self.issues)
        super().__init__(f"invalid {source} ({len(self.issues)} problem(s)):\n{lines}")


class TopicError(BridgeDomainError):
    """A topic pattern or rendered topic breaks an AWS IoT topic rule."""


class TopicValueError(TopicError):
    """A value substituted into a topic pattern would add a level or a wildcard, or is empty."""


class InvalidDevEuiError(BridgeDomainError, ValueError):
    """A DevEUI is not exactly 16 hexadecimal digits."""


class SecretReferenceError(BridgeDomainError):
    """A Secrets Manager reference could not be read, or lacks the JSON key it names."""
