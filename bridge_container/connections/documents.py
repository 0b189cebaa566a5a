"""Connection documents: secrets split out for storage, masked placeholders, retained certificate fields, views.

Rules the API applies to a body before validating it, so a client can send back what it read:

* ``"**********"`` (the mask every response shows for a secret) in a PUT means "keep the stored value";
  in a POST, or where nothing is stored, it is an error — a literal mask is never stored as a secret.
* ``certificate``, ``privateKey`` and ``certificateId`` left out of a PUT keep their stored values whatever the
  protocol, so SSL → WSS keeps them (hidden in responses while WSS) and WSS → SSL brings them back; send ``null``
  to clear them.
"""

from __future__ import annotations

import copy
from collections.abc import Iterator
from typing import Any

from bridge_domain.connection import Connection
from bridge_domain.exceptions import FieldIssue
from bridge_domain.loading import format_location
from bridge_domain.secrets import MASK, REVEAL_SECRETS

CERTIFICATE_FIELDS = ("certificate", "privateKey", "certificateId")
_CONFIGURATION = "configuration"
_LNS = "lns"

Path = tuple[str | int, ...]
Document = dict[str, Any]


def masked_document(connection: Connection) -> Document:
    """The connection as JSON with every secret value replaced by the mask."""
    return connection.model_dump(mode="json")


def revealed_document(connection: Connection) -> Document:
    """The connection as JSON with secret values in clear (only for storage and live apply)."""
    return connection.model_dump(mode="json", context={REVEAL_SECRETS: True})


def encode_path(path: Path) -> str:
    """``('configuration', 'lns', 0, 'asKey')`` → ``/configuration/lns/0/asKey`` (a JSON pointer)."""
    return "".join("/" + str(part).replace("~", "~0").replace("/", "~1") for part in path)


def decode_path(pointer: str) -> Path:
    parts: list[str | int] = []
    for raw in pointer.split("/")[1:]:
        text = raw.replace("~1", "/").replace("~0", "~")
        parts.append(int(text) if text.isdigit() else text)
    return tuple(parts)


def _leaves(document: Any, path: Path = ()) -> Iterator[tuple[Path, Any]]:
    if isinstance(document, dict):
        for key, value in document.items():
            yield from _leaves(value, (*path, key))
    elif isinstance(document, list):
        for index, value in enumerate(document):
            yield from _leaves(value, (*path, index))
    else:
        yield path, document


def _get(document: Any, path: Path) -> Any:
    node = document
    for part in path:
        if isinstance(part, int):
            if not isinstance(node, list) or part >= len(node):
                return None
        elif not isinstance(node, dict):
            return None
        node = node[part] if isinstance(part, int) else node.get(part)
    return node


def _set(document: Any, path: Path, value: Any) -> None:
    node = document
    for part in path[:-1]:
        node = node[part]
    node[path[-1]] = value


def split_secrets(connection: Connection) -> tuple[Document, dict[str, str]]:
    """The document to store in the clear (secrets masked) and the secret values by JSON pointer."""
    masked = masked_document(connection)
    revealed = revealed_document(connection)
    secrets: dict[str, str] = {}
    for path, value in _leaves(masked):
        if value == MASK:
            clear = _get(revealed, path)
            if isinstance(clear, str):
                secrets[encode_path(path)] = clear
    return masked, secrets


def join_secrets(public: Document, secrets: dict[str, str]) -> Document:
    """The inverse of :func:`split_secrets`: a revealed document ready for validation."""
    document = copy.deepcopy(public)
    for pointer, value in secrets.items():
        _set(document, decode_path(pointer), value)
    return document


def _stored_counterpart(path: Path, body: Document, stored: Document) -> Any:
    """The stored value at ``path``; an ``lns`` entry is matched by its ``kind``, not its position."""
    if len(path) >= 3 and path[0] == _CONFIGURATION and path[1] == _LNS and isinstance(path[2], int):
        kind = _get(body, (*path[:3], "kind"))
        entries = _get(stored, (_CONFIGURATION, _LNS)) or []
        for entry in entries:
            if isinstance(entry, dict) and entry.get("kind", "thingpark") == (kind or "thingpark"):
                return _get(entry, path[3:])
        return None
    return _get(stored, path)


def fill_masked(body: Any, stored: Document | None) -> tuple[Any, list[FieldIssue]]:
    """Replace each mask in ``body`` by the stored secret at the same place; issues where none is stored."""
    if not isinstance(body, dict):
        return body, []
    filled = copy.deepcopy(body)
    issues: list[FieldIssue] = []
    for path, value in list(_leaves(body)):
        if value != MASK or not path:
            continue
        clear = _stored_counterpart(path, body, stored) if stored is not None else None
        if isinstance(clear, str) and clear != MASK:
            _set(filled, path, clear)
        else:
            issues.append(
                FieldIssue(format_location(path), f"'{MASK}' stands for a stored secret, but none is stored here")
            )
    return filled, issues


def retain_certificate(body: Any, stored: Document) -> Any:
    """Copy stored certificate fields into a PUT body that leaves them out (they survive a protocol switch)."""
    if not isinstance(body, dict) or not isinstance(body.get(_CONFIGURATION), dict):
        return body
    configuration = body[_CONFIGURATION]
    stored_configuration = stored.get(_CONFIGURATION) or {}
    for field in CERTIFICATE_FIELDS:
        if field not in configuration and stored_configuration.get(field) is not None:
            configuration[field] = stored_configuration[field]
    return body


def public_view(connection: Connection) -> Document:
    """What a response shows: secrets masked; certificate fields hidden while the protocol is WSS."""
    document = masked_document(connection)
    if connection.configuration.protocol == "WSS":
        for field in CERTIFICATE_FIELDS:
            document[_CONFIGURATION].pop(field, None)
    return document
