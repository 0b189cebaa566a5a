"""Create and edit forms generated from the connection model, and the request body built back from a form.

Every input is one field of :class:`~bridge_domain.connection.Connection` (names and descriptions from the model,
required ones marked); the LNS entries are one fieldset per kind, the broker override one fieldset. Secrets are
write-only: an edit form shows them blank, and a blank secret keeps the stored value (the body carries the
Connections API's mask, or the stored Secrets Manager reference, at that place). The body goes through the same
validation as the API, whose field paths (``configuration.lns[1].ingressToken``) are mapped back to inputs.
"""

from __future__ import annotations

import re
import types
import typing
from collections.abc import Mapping
from dataclasses import dataclass, field
from typing import Any, Literal

from pydantic import BaseModel, SecretStr
from pydantic.fields import FieldInfo

from bridge_container.connections.documents import CERTIFICATE_FIELDS
from bridge_domain.connection import CONNECTOR_ID, BrokerOverride, Connection, ConnectionConfiguration
from bridge_domain.events import EventSettings
from bridge_domain.exceptions import FieldIssue
from bridge_domain.lns import ChirpStackLns, ThingParkLns, TtsLns
from bridge_domain.loading import format_location

Kind = Literal["text", "number", "checkbox", "select", "secret", "pem"]
LNS_MODELS: dict[str, type[BaseModel]] = {"thingpark": ThingParkLns, "chirpstack": ChirpStackLns, "tts": TtsLns}
_PEM_FIELDS = frozenset({"certificate", "privateKey", "caCertificate"})
_SKIPPED = frozenset({"kind"})  # an LNS entry's kind is its fieldset
# pydantic puts a discriminated union's tag in the error's location: lns[1].chirpstack.ingressToken
_UNION_TAG = re.compile(r"(lns\[\d+\])\.(?:thingpark|chirpstack|tts)(?=\.|$)")


@dataclass(frozen=True, slots=True)
class FormField:
    """One input: its form name, where it goes in the body, and how it is shown."""

    name: str  # the input's name: "configuration.region", "broker.host", "lns.tts.apiKey"
    label: str  # the field's JSON name
    kind: Kind
    required: bool
    description: str
    choices: tuple[str, ...] = ()
    default: str = ""
    numeric: bool = False  # a select over integer literals (uplinkQos): its value goes into the body as a number

    @property
    def secret(self) -> bool:
        return self.kind in ("secret", "pem")


@dataclass(frozen=True, slots=True)
class FieldGroup:
    """A fieldset: ``toggle`` names the checkbox that switches an optional group on (broker, each LNS)."""

    key: str
    title: str
    fields: tuple[FormField, ...]
    toggle: str | None = None
    note: str = ""


def _flatten(annotation: Any) -> list[Any]:
    """The leaf types of an annotation: Optional, unions and Annotated unwrapped."""
    origin = typing.get_origin(annotation)
    if origin is typing.Annotated:
        return _flatten(typing.get_args(annotation)[0])
    if origin in (typing.Union, types.UnionType):
        return [leaf for arg in typing.get_args(annotation) for leaf in _flatten(arg)]
    return [annotation]


def _kind(label: str, info: FieldInfo) -> tuple[Kind, tuple[str, ...]]:
    leaves = [leaf for leaf in _flatten(info.annotation) if leaf is not type(None)]
    if SecretStr in leaves:
        return ("pem" if label in _PEM_FIELDS else "secret"), ()
    if label in _PEM_FIELDS:
        return "pem", ()
    if bool in leaves:
        return "checkbox", ()
    if int in leaves:
        return "number", ()
    literals = [leaf for leaf in leaves if typing.get_origin(leaf) is Literal]
    if literals:
        return "select", tuple(str(choice) for choice in typing.get_args(literals[0]))
    return "text", ()


def _literal_choices(info: FieldInfo) -> tuple[Any, ...]:
    literals = [leaf for leaf in _flatten(info.annotation) if typing.get_origin(leaf) is Literal]
    return typing.get_args(literals[0]) if literals else ()


def _default(info: FieldInfo) -> str:
    value = info.get_default(call_default_factory=True) if not info.is_required() else None
    if value is None or isinstance(value, tuple | list | BaseModel):
        return ""
    if isinstance(value, bool):
        return "on" if value else ""
    return str(value)


def _fields_of(model: type[BaseModel], prefix: str, only: tuple[str, ...] | None = None) -> list[FormField]:
    found: list[FormField] = []
    for name, info in model.model_fields.items():
        label = info.alias or name
        if label in _SKIPPED or (only is not None and label not in only):
            continue
        kind, choices = _kind(label, info)
        numeric = kind == "select" and all(isinstance(choice, int) for choice in _literal_choices(info))
        found.append(
            FormField(
                name=f"{prefix}.{label}",
                label=label,
                kind=kind,
                required=info.is_required(),
                description=info.description or "",
                choices=choices,
                default=_default(info),
                numeric=numeric,
            )
        )
    return found


def _configuration_fields() -> list[FormField]:
    nested = {"broker", "lns", "events"}
    return [
        entry
        for entry in _fields_of(ConnectionConfiguration, "configuration")
        if entry.label not in nested and entry.label not in CERTIFICATE_FIELDS
    ]


def connection_form() -> tuple[FieldGroup, ...]:
    """The groups of the create and edit forms, in the order shown."""
    main = [
        FormField("name", "name", "text", True, Connection.model_fields["name"].description or ""),
        *_configuration_fields(),
    ]
    return (
        FieldGroup("connection", "Connection", tuple(main)),
        FieldGroup(
            "certificate",
            "Certificate (SSL)",
            tuple(_fields_of(ConnectionConfiguration, "configuration", CERTIFICATE_FIELDS)),
            note="Required when the protocol is SSL, unless createCertificate is on. Hidden, and kept, while WSS.",
        ),
        FieldGroup(
            "events",
            "Device events",
            tuple(_fields_of(EventSettings, "events")),
            note="Events beyond uplinks the network servers send: each kind on or off, and where they are published.",
        ),
        FieldGroup(
            "broker",
            "Broker override",
            tuple(_fields_of(BrokerOverride, "broker")),
            toggle="broker.enabled",
            note="Connect here instead of <accountPrefix>.iot.<region>.amazonaws.com.",
        ),
        *(
            FieldGroup(
                f"lns.{kind}", f"Network server: {kind}", tuple(_fields_of(model, f"lns.{kind}")), f"lns.{kind}.enabled"
            )
            for kind, model in LNS_MODELS.items()
        ),
    )


FORM: tuple[FieldGroup, ...] = connection_form()


# --- form values ↔ documents ------------------------------------------------------------------------------------
def _body_path(name: str, lns_index: Mapping[str, int]) -> tuple[str | int, ...]:
    parts = name.split(".")
    if parts[0] == "name":
        return ("name",)
    if parts[0] == "configuration":
        return ("configuration", parts[1])
    if parts[0] in ("broker", "events"):
        return ("configuration", parts[0], parts[1])
    kind, leaf = parts[1], parts[2]
    return ("configuration", "lns", lns_index.get(kind, -1), leaf)


def _get(document: Any, path: tuple[str | int, ...]) -> Any:
    node = document
    for part in path:
        if isinstance(part, int):
            node = node[part] if isinstance(node, list) and 0 <= part < len(node) else None
        else:
            node = node.get(part) if isinstance(node, dict) else None
    return node


def _lns_index(document: Mapping[str, Any]) -> dict[str, int]:
    entries = _get(document, ("configuration", "lns")) or []
    return {
        str(entry.get("kind", "thingpark")): index for index, entry in enumerate(entries) if isinstance(entry, dict)
    }


def values_of(stored: Mapping[str, Any]) -> dict[str, str]:
    """Form values of a stored (masked) document: every field but the secrets, which stay blank."""
    index = _lns_index(stored)
    values: dict[str, str] = {}
    if _get(stored, ("configuration", "broker")) is not None:
        values["broker.enabled"] = "on"
    for kind in LNS_MODELS:
        if kind in index:
            values[f"lns.{kind}.enabled"] = "on"
    for group in FORM:
        for entry in group.fields:
            if entry.secret:
                continue
            value = _get(stored, _body_path(entry.name, index))
            if value is None:
                continue
            values[entry.name] = ("on" if value else "") if isinstance(value, bool) else str(value)
    return values


def stored_secrets(stored: Mapping[str, Any] | None) -> frozenset[str]:
    """The secret inputs that have a stored value (shown as 'stored: leave blank to keep')."""
    if stored is None:
        return frozenset()
    index = _lns_index(stored)
    return frozenset(
        entry.name
        for group in FORM
        for entry in group.fields
        if entry.secret and _get(stored, _body_path(entry.name, index)) is not None
    )


def default_values() -> dict[str, str]:
    values = {entry.name: entry.default for group in FORM for entry in group.fields if entry.default}
    values["lns.thingpark.enabled"] = "on"  # the model's default network server
    return values


@dataclass(slots=True)
class BuiltBody:
    """The request body of a form, and where each body path came from (to place the errors)."""

    body: dict[str, Any]
    inputs_by_path: dict[str, str] = field(default_factory=dict)


def build_body(form: Mapping[str, str], stored: Mapping[str, Any] | None) -> BuiltBody:
    """The Connections API body of a submitted form; ``stored`` is the masked stored document of an edit."""
    enabled_lns = [kind for kind in LNS_MODELS if form.get(f"lns.{kind}.enabled")]
    index = {kind: position for position, kind in enumerate(enabled_lns)}
    stored_index = _lns_index(stored) if stored is not None else {}
    configuration: dict[str, Any] = {}
    body: dict[str, Any] = {"connectorId": CONNECTOR_ID, "configuration": configuration}
    if form.get("broker.enabled"):
        configuration["broker"] = {}
    configuration["lns"] = [{"kind": kind} for kind in enabled_lns]
    configuration["events"] = {}
    built = BuiltBody(body)
    for group in FORM:
        if group.toggle is not None and not form.get(group.toggle):
            continue
        for entry in group.fields:
            path = _body_path(entry.name, index)
            built.inputs_by_path[format_location(path)] = entry.name
            raw = form.get(entry.name, "")
            value: Any
            if entry.kind == "checkbox":
                value = bool(raw)
            elif entry.secret and not raw.strip():
                kept = _get(stored, _body_path(entry.name, stored_index)) if stored is not None else None
                if kept is None:
                    continue
                value = kept  # the mask or the Secrets Manager reference: the stored value stays
            elif not raw.strip():
                continue  # the model's default, or its 'Field required'
            elif entry.kind == "number" or entry.numeric:
                value = int(raw) if raw.strip().lstrip("-").isdigit() else raw
            elif entry.kind == "pem":
                value = raw.strip() + "\n"
            else:
                value = raw.strip()
            parent = _get(body, path[:-1])
            parent[path[-1]] = value
    return built


def place_issues(issues: list[FieldIssue], built: BuiltBody) -> tuple[dict[str, list[str]], list[str]]:
    """Errors by input name, and those that belong to no single input (shown above the form)."""
    by_input: dict[str, list[str]] = {}
    general: list[str] = []
    for issue in issues:
        name = built.inputs_by_path.get(_UNION_TAG.sub(r"\1", issue.path))
        if name is None:
            general.append(str(issue))
        else:
            by_input.setdefault(name, []).append(issue.message)
    return by_input, general
