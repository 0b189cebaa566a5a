"""Load and validate a connection: from a JSON file (same shape as POST /connections) or a parsed document."""

from __future__ import annotations

import json
from pathlib import Path
from typing import Any

from pydantic import ValidationError

from bridge_domain.connection import Connection
from bridge_domain.exceptions import ConfigError, FieldIssue
from bridge_domain.secrets import REVEAL_SECRETS, SecretFetcher, replace_references


def format_location(loc: tuple[str | int, ...]) -> str:
    """``('configuration', 'lns', 0, 'asKey')`` → ``configuration.lns[0].asKey``."""
    text = ""
    for part in loc:
        if isinstance(part, int):
            text += f"[{part}]"
        else:
            text += f".{part}" if text else part
    return text or "(document)"


def issues_from(exc: ValidationError) -> list[FieldIssue]:
    """Every error of ``exc`` as a field path and a message (inputs, which may be secrets, are left out)."""
    return [FieldIssue(format_location(tuple(error["loc"])), error["msg"]) for error in exc.errors(include_url=False)]


def parse_connection(document: Any, *, source: str = "configuration") -> Connection:
    """Validate a parsed document; raise :class:`ConfigError` listing every problem with its field path."""
    try:
        return Connection.model_validate(document)
    except ValidationError as exc:
        raise ConfigError(issues_from(exc), source) from None


def load_connection_file(path: str | Path) -> Connection:
    """Read and validate a JSON connection file; errors name the file and each field path."""
    file_path = Path(path)
    try:
        document = json.loads(file_path.read_text(encoding="utf-8"))
    except FileNotFoundError:
        raise ConfigError([FieldIssue("(file)", f"{file_path} does not exist")], str(file_path)) from None
    except json.JSONDecodeError as exc:
        issue = FieldIssue("(document)", f"not valid JSON: {exc.msg} at line {exc.lineno} column {exc.colno}")
        raise ConfigError([issue], str(file_path)) from None
    return parse_connection(document, source=str(file_path))


def resolve_secret_references(connection: Connection, fetch: SecretFetcher) -> Connection:
    """A copy of ``connection`` with every Secrets Manager reference fetched and validated like inline values."""
    revealed = connection.model_dump(mode="json", context={REVEAL_SECRETS: True})
    return parse_connection(replace_references(revealed, fetch), source="configuration (after fetching secrets)")
