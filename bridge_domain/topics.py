"""Topic patterns: render ``uplinkTopicPattern`` / ``downlinkTopicPattern`` under AWS IoT's topic rules.

AWS IoT rules enforced here: a topic is at most 256 UTF-8 bytes and has at most 7 slashes (the
``$aws/rules/<rule>/`` Basic Ingest prefix does not count); a published topic has no ``+`` or ``#``;
topics starting with ``$`` are reserved except Basic Ingest. A value substituted for a placeholder must
stay inside its level: ``/``, ``+``, ``#``, NUL, an empty value, or a ``$`` starting the topic are refused and never
published. Uplink patterns may also hold ThingPark's keyword expressions (:mod:`bridge_domain.topic_keywords`).
"""

from __future__ import annotations

import re
from collections.abc import Callable, Mapping
from dataclasses import dataclass

from bridge_domain.exceptions import TopicError, TopicValueError
from bridge_domain.quotas import MAX_TOPIC_BYTES, MAX_TOPIC_SLASHES
from bridge_domain.topic_keywords import KeywordExpression, KeywordValueError, parse_expression, topic_text

BASIC_INGEST_PREFIX = "$aws/rules/"
DEV_EUI_FIELD = "DevEUI"
# Fields of the normalised uplink record that an uplink pattern may use as placeholders.
UPLINK_TOPIC_FIELDS = frozenset({"DevEUI", "DevAddr", "FPort", "FCntUp", "LnsKind", "ApplicationId"})
DOWNLINK_TOPIC_FIELDS = frozenset({DEV_EUI_FIELD})
# Suffix levels of the downlink feedback topics (``<downlink topic>/<status>``): a downlink's lifecycle.
FEEDBACK_STATUSES = ("queued", "sent", "acknowledged", "nacked", "expired", "failed")

# Any ``{...}`` without nested braces: a placeholder or a keyword expression, told apart when parsed.
_EXPRESSION_RE = re.compile(r"\{([^{}]*)\}")
_FORBIDDEN_VALUE_CHARS = ("/", "+", "#", "\x00")
_RESERVED_START = "starts the topic with '$', which AWS IoT reserves"


def _level_problem(value: str) -> str | None:
    """Why ``value`` would not stay one non-empty level, or None."""
    if not value:
        return "is empty"
    for char in _FORBIDDEN_VALUE_CHARS:
        if char in value:
            shown = "NUL" if char == "\x00" else repr(char)
            return f"contains {shown}, which would change the topic structure"
    return None


def topic_value_problem(value: str, first: bool = False) -> str | None:
    """Why ``value`` cannot stand alone inside one topic level (the first one when ``first``), or None."""
    problem = _level_problem(value)
    if problem is not None:
        return problem
    if first and value[0] == "$":
        return _RESERVED_START
    if not value.isascii() and not _encodable(value):
        return "is not valid UTF-8 text"
    return None


def _encodable(value: str) -> bool:
    """False for text UTF-8 cannot carry (lone surrogates, which a JSON parser may let through)."""
    try:
        value.encode()
    except UnicodeEncodeError:
        return False
    return True


def check_topic_value(name: str, value: str) -> None:
    """Raise :class:`TopicValueError` if ``value`` cannot stand alone inside one topic level."""
    if not value:
        raise TopicValueError(f"value for {{{name}}} is empty")
    for char in _FORBIDDEN_VALUE_CHARS:
        if char in value:
            shown = "NUL" if char == "\x00" else repr(char)
            raise TopicValueError(f"value for {{{name}}} contains {shown}, which would change the topic structure")


def _counted_part(topic: str) -> str:
    """The part of a topic that AWS counts towards the slash limit (Basic Ingest prefix excluded)."""
    if topic.startswith(BASIC_INGEST_PREFIX):
        rest = topic[len(BASIC_INGEST_PREFIX) :]
        _, _, after_rule = rest.partition("/")
        return after_rule
    return topic


def check_topic(topic: str, *, is_filter: bool = False) -> None:
    """Raise :class:`TopicError` unless ``topic`` (or a subscription filter) satisfies AWS IoT's rules."""
    if not topic:
        raise TopicError("topic is empty")
    if len(topic.encode()) > MAX_TOPIC_BYTES:
        raise TopicError(f"topic is longer than {MAX_TOPIC_BYTES} bytes")
    if "\x00" in topic:
        raise TopicError("topic contains NUL")
    if topic.startswith("$") and not topic.startswith(BASIC_INGEST_PREFIX) and not topic.startswith("$share/"):
        raise TopicError("topics starting with '$' are reserved by AWS IoT (only '$aws/rules/...' may be used)")
    if _counted_part(topic).count("/") > MAX_TOPIC_SLASHES:
        raise TopicError(f"topic has more than {MAX_TOPIC_SLASHES} slashes")
    if not is_filter and ("+" in topic or "#" in topic):
        raise TopicError("a published topic cannot contain '+' or '#'")


@dataclass(frozen=True, slots=True)
class TopicPattern:
    """A parsed topic pattern such as ``tpx/things/{DevEUI}/uplink``."""

    pattern: str
    # Alternating pieces: literals[0] name[0] literals[1] name[1] ... literals[-1]. A name is the text inside
    # the braces: a field (``DevEUI``) or a keyword expression (``DevEUI_uplink.CustomerData.name|DevEUI``).
    literals: tuple[str, ...]
    names: tuple[str, ...]
    expressions: tuple[KeywordExpression, ...] = ()
    # True when some expression is more than one record field (a path, a fallback or a constant).
    has_keywords: bool = False

    @classmethod
    def parse(
        cls, pattern: str, *, allowed: frozenset[str] = UPLINK_TOPIC_FIELDS, keywords: bool = False
    ) -> TopicPattern:
        """Parse and check ``pattern``; raise :class:`TopicError` naming the rule it breaks.

        With ``keywords``, a placeholder may also be a keyword expression over the uplink document.
        """
        if not pattern:
            raise TopicError("pattern is empty")
        literals: list[str] = []
        names: list[str] = []
        position = 0
        for match in _EXPRESSION_RE.finditer(pattern):
            literals.append(pattern[position : match.start()])
            names.append(match.group(1))
            position = match.end()
        literals.append(pattern[position:])
        for literal in literals:
            if "{" in literal or "}" in literal:
                raise TopicError("pattern has a '{' or '}' that is not part of a {Placeholder}")
            if "+" in literal or "#" in literal:
                raise TopicError("pattern contains '+' or '#': wildcards cannot be published")
        if not keywords:
            unknown = sorted(set(names) - allowed)
            if unknown:
                raise TopicError(f"unknown placeholder(s) {unknown}; allowed: {sorted(allowed)}")
        expressions = tuple(parse_expression(name, fields=allowed, allow_paths=keywords) for name in names)
        if DEV_EUI_FIELD not in names:
            raise TopicError("pattern must contain {DevEUI}")
        # Check the pattern's own shape with a placeholder-sized stand-in (16 chars, a DevEUI's length).
        sample = "".join(lit + ("X" * 16 if i < len(names) else "") for i, lit in enumerate(literals))
        check_topic(sample)
        if "" in sample.split("/"):
            raise TopicError("pattern has an empty topic level (leading, trailing or double '/')")
        return cls(
            pattern=pattern,
            literals=tuple(literals),
            names=tuple(names),
            expressions=expressions,
            has_keywords=not all(expression.is_plain_field for expression in expressions),
        )

    def render(self, values: Mapping[str, object]) -> str:
        """Substitute ``values`` (keyed by name); raise :class:`TopicValueError` for a value that would escape."""
        # This runs for every uplink of a pattern with several placeholders: each value is checked for what would
        # leave its level, the whole topic once for a reserved start and its size.
        literals = self.literals
        parts = [literals[0]]
        for index, name in enumerate(self.names):
            try:
                raw = values[name]
            except KeyError:
                raise TopicValueError(f"no value for {{{name}}}") from None
            value = raw if isinstance(raw, str) else str(raw)
            check_topic_value(name, value)
            parts.append(value)
            parts.append(literals[index + 1])
        topic = "".join(parts)
        if not literals[0] and topic[0] == "$":
            raise TopicValueError(f"value for {{{self.names[0]}}} {_RESERVED_START}")
        try:
            size = len(topic.encode())
        except UnicodeEncodeError:
            raise TopicValueError("rendered topic is not valid UTF-8 text") from None
        if size > MAX_TOPIC_BYTES:
            raise TopicValueError(f"rendered topic is longer than {MAX_TOPIC_BYTES} bytes")
        return topic

    def render_keywords(self, field_value: Callable[[str], object | None], document: object, *, thingpark: bool) -> str:
        """Resolve every expression against a record's fields and its LNS document, then substitute.

        Raise :class:`~bridge_domain.topic_keywords.KeywordValueError` naming the field whose value is missing or
        would leave its level, or :class:`TopicValueError` when the whole topic is too long.
        """
        literals = self.literals
        parts = [literals[0]]
        for index, expression in enumerate(self.expressions):
            source, found = expression.resolve(field_value, document, thingpark=thingpark)
            value = topic_text(found)
            if value is None:
                raise KeywordValueError(source, "is an object or an array, not a value a topic level can hold")
            problem = topic_value_problem(value, index == 0 and not literals[0])
            if problem is not None:
                raise KeywordValueError(source, problem)
            parts.append(value)
            parts.append(literals[index + 1])
        topic = "".join(parts)
        if len(topic.encode()) > MAX_TOPIC_BYTES:
            raise TopicValueError(f"rendered topic is longer than {MAX_TOPIC_BYTES} bytes")
        return topic

    def _levels(self) -> list[str | None]:
        """The pattern's levels; ``None`` for a level that is exactly one placeholder."""
        levels: list[str | None] = []
        for level in self.pattern.split("/"):
            match = _EXPRESSION_RE.fullmatch(level)
            if match is not None:
                levels.append(None)
            elif _EXPRESSION_RE.search(level):
                raise TopicError(f"placeholder must fill a whole topic level, got {level!r}")
            else:
                levels.append(level)
        return levels

    def subscription_filter(self) -> str:
        """The MQTT filter matching every topic of this pattern (each placeholder level becomes ``+``)."""
        return "/".join("+" if level is None else level for level in self._levels())

    def parse_topic(self, topic: str) -> dict[str, str] | None:
        """Recover placeholder values from a concrete ``topic``; ``None`` when it does not match."""
        levels = self._levels()
        received = topic.split("/")
        if len(received) != len(levels):
            return None
        values: dict[str, str] = {}
        names = iter(self.names)
        for expected, actual in zip(levels, received, strict=True):
            if expected is None:
                if not actual:
                    return None
                values[next(names)] = actual
            elif expected != actual:
                return None
        return values

    def child(self, level: str) -> TopicPattern:
        """This pattern with one more literal level appended (used for downlink feedback topics)."""
        return TopicPattern.parse(f"{self.pattern}/{level}", allowed=frozenset(self.names))


def shared_subscription(group: str, topic_filter: str) -> str:
    """``$share/<group>/<filter>``: each message goes to one subscriber of the group (one bridge task)."""
    if not group or any(c in group for c in "/+#") or len(group) > 128:
        raise TopicError("shared subscription group must be 1-128 characters without '/', '+' or '#'")
    return f"$share/{group}/{topic_filter}"
