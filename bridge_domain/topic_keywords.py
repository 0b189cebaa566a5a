"""Topic keywords: ThingPark's ``{path|fallback}`` expressions over the uplink document, parsed once.

Inside the braces of a topic pattern, an expression is one or more alternatives separated by ``|``, tried left to
right until one has a value:

* a record field (``DevEUI``, ``DevAddr``, ``FPort``, ``FCntUp``, ``LnsKind``, ``ApplicationId``): the normalised
  uplink's value, the same for every LNS;
* a path over the document the LNS posted: names joined by ``.``, array elements by ``[index]``
  (``DevEUI_uplink.CustomerData.name``, ``rxInfo[0].gatewayId``); for ThingPark the ``DevEUI_uplink.`` root may be
  left out (``CustomerData.name``), as ThingPark's own patterns do;
* a quoted constant, last only (``'unassigned'``).

An alternative is absent when the path leads nowhere, or to ``null`` or an empty string; the next one is tried.
A value found is a string, a number or a boolean (written as JSON writes it); an object or an array, or a value
that would leave its topic level (``/``, ``+``, ``#``, NUL, a leading ``$`` at the start of the topic), refuses
the uplink: an alternative is never skipped because its value is hostile.
"""

from __future__ import annotations

import re
from collections.abc import Callable, Mapping
from dataclasses import dataclass
from typing import Final

from bridge_domain.exceptions import TopicError

# ThingPark's document root: its uplink fields may be named without it.
THINGPARK_UPLINK_ROOT: Final = "DevEUI_uplink"
MAX_ARRAY_INDEX: Final = 9_999
# A document field name: what LNS documents use (letters, digits, '_' and '-'), starting with a letter or '_'.
_NAME: Final = r"[A-Za-z_][A-Za-z0-9_-]*"
_PATH_RE: Final = re.compile(rf"{_NAME}(?:\.{_NAME}|\[[0-9]{{1,4}}\])*")
_STEP_RE: Final = re.compile(rf"\.?({_NAME})|\[([0-9]{{1,4}})\]")
_CONSTANT_RE: Final = re.compile(r"'([^'/+#\x00{}|]+)'")

PathStep = str | int


@dataclass(frozen=True, slots=True)
class FieldAlternative:
    """A field of the normalised uplink record, by its placeholder name."""

    name: str


@dataclass(frozen=True, slots=True)
class PathAlternative:
    """A path into the LNS document: ``text`` as written, ``steps`` the keys and indexes to follow."""

    text: str
    steps: tuple[PathStep, ...]


@dataclass(frozen=True, slots=True)
class ConstantAlternative:
    """A fixed value used when nothing before it has one (checked once, at configuration time)."""

    value: str


Alternative = FieldAlternative | PathAlternative | ConstantAlternative


class KeywordValueError(TopicError):
    """A keyword resolved to a value that cannot stand in a topic level; ``field`` names where it came from."""

    def __init__(self, field: str, problem: str) -> None:
        super().__init__(f"{field}: {problem}")
        self.field = field
        self.problem = problem


@dataclass(frozen=True, slots=True)
class KeywordExpression:
    """One ``{...}`` of a pattern: its alternatives in order."""

    text: str
    alternatives: tuple[Alternative, ...]

    @property
    def is_plain_field(self) -> bool:
        """Today's placeholder: exactly one record field, no path, no fallback."""
        return len(self.alternatives) == 1 and isinstance(self.alternatives[0], FieldAlternative)

    def resolve(
        self, field_value: Callable[[str], object | None], document: object, *, thingpark: bool
    ) -> tuple[str, object]:
        """The first alternative with a value: (where it came from, the value); KeywordValueError when none has."""
        for alternative in self.alternatives:
            if isinstance(alternative, FieldAlternative):
                found, source = field_value(alternative.name), alternative.name
            elif isinstance(alternative, PathAlternative):
                found, source = _lookup(document, alternative.steps, thingpark=thingpark), alternative.text
            else:
                return "'constant'", alternative.value
            if found is None or found == "":
                continue
            return source, found
        tried = ", ".join(_describe(alternative) for alternative in self.alternatives)
        raise KeywordValueError(_describe(self.alternatives[0]), f"no value for the topic (tried {tried})")


def _describe(alternative: Alternative) -> str:
    if isinstance(alternative, FieldAlternative):
        return alternative.name
    if isinstance(alternative, PathAlternative):
        return alternative.text
    return repr(alternative.value)


def _follow(node: object, steps: tuple[PathStep, ...]) -> object | None:
    for step in steps:
        if isinstance(step, str):
            if not isinstance(node, Mapping):
                return None
            node = node.get(step)
        else:
            if not isinstance(node, list) or step >= len(node):
                return None
            node = node[step]
        if node is None:
            return None
    return node


def _lookup(document: object, steps: tuple[PathStep, ...], *, thingpark: bool) -> object | None:
    """The value at ``steps``; ThingPark paths may leave out the ``DevEUI_uplink`` root."""
    found = _follow(document, steps)
    if found is None and thingpark and steps[0] != THINGPARK_UPLINK_ROOT and isinstance(document, Mapping):
        found = _follow(document.get(THINGPARK_UPLINK_ROOT), steps)
    return found


def _parse_path(text: str) -> PathAlternative:
    steps: list[PathStep] = []
    for match in _STEP_RE.finditer(text):
        name, index = match.group(1), match.group(2)
        steps.append(name if name is not None else int(index))
    return PathAlternative(text, tuple(steps))


def parse_expression(text: str, *, fields: frozenset[str], allow_paths: bool) -> KeywordExpression:
    """Parse the inside of one ``{...}``; :class:`TopicError` says what is wrong with it."""
    if not text:
        raise TopicError("empty placeholder '{}'")
    parts = text.split("|")
    alternatives: list[Alternative] = []
    for position, raw in enumerate(parts):
        part = raw.strip()
        constant = _CONSTANT_RE.fullmatch(part)
        if part in fields:
            alternatives.append(FieldAlternative(part))
        elif constant is not None:
            if position != len(parts) - 1:
                raise TopicError(f"in {{{text}}}: a quoted constant can only be the last alternative")
            if not allow_paths:
                raise TopicError(f"in {{{text}}}: only {sorted(fields)} may be used here")
            if constant.group(1).startswith("$"):
                raise TopicError(f"in {{{text}}}: a constant cannot start with '$'")
            alternatives.append(ConstantAlternative(constant.group(1)))
        elif _PATH_RE.fullmatch(part) is not None and allow_paths:
            if "." not in part and "[" not in part:
                # A lone name that is no record field is most likely a misspelt placeholder: say so, unless it
                # is meant as a ThingPark field (which the user can write as DevEUI_uplink.<name>).
                raise TopicError(
                    f"unknown placeholder {{{part}}}; fields: {sorted(fields)}; "
                    f"a document field is written as a path, e.g. {THINGPARK_UPLINK_ROOT}.{part}"
                )
            alternatives.append(_parse_path(part))
        elif not allow_paths:
            raise TopicError(f"unknown placeholder(s) [{part!r}]; allowed: {sorted(fields)}")
        else:
            raise TopicError(
                f"in {{{text}}}: {part!r} is neither a field ({', '.join(sorted(fields))}), a path such as "
                f"{THINGPARK_UPLINK_ROOT}.CustomerData.name or rxInfo[0].gatewayId, nor a quoted constant"
            )
    return KeywordExpression(text, tuple(alternatives))


def topic_text(value: object) -> str | None:
    """A scalar as it is written in a topic (JSON's spelling of booleans); None for objects and arrays."""
    if isinstance(value, str):
        return value
    if isinstance(value, bool):
        return "true" if value else "false"
    if isinstance(value, int | float):
        return str(value)
    return None
