"""Message schemas: the input article, the enriched event, the dead-letter reasons.

The hot path is :func:`parse_article` (bytes → :class:`Article` or a :class:`Rejection`). It decodes and
parses with the standard library first so each failure gets its own reason code, then validates with pydantic
(``model_validate`` on a dict costs a few microseconds, well under 1 % of the time a model spends on an
article; see ``bench/``).

>>> parse_article(b'{"id": "a1", "text": "Quake hits"}').id
'a1'
>>> parse_article(b'{"id": "a1", "text": "  "}').reason.value
'empty_text'
"""

from __future__ import annotations

import enum
import json
import math
from dataclasses import dataclass
from typing import Annotated, Any, Literal

from pydantic import BaseModel, ConfigDict, Field, ValidationError, WithJsonSchema, field_validator

#: Bumped when a field of the enriched event changes meaning or disappears; sent as the ``schema-version`` header.
SCHEMA_VERSION = "1"


class DeadLetterReason(enum.StrEnum):
    """The ``reason`` header of a dead letter. Stable codes: alerts and dashboards group by them."""

    INVALID_JSON = "invalid_json"
    INVALID_SCHEMA = "invalid_schema"
    EMPTY_TEXT = "empty_text"
    TOO_LARGE = "too_large"
    NOT_UTF8 = "not_utf8"
    TOMBSTONE = "tombstone"
    CLASSIFICATION_ERROR = "classification_error"
    OUTPUT_TOO_LARGE = "output_too_large"


#: Integer ids are accepted (upstream systems number their articles) within 64 bits, and become strings.
_INT64 = (-(2**63), 2**63 - 1)


class Article(BaseModel):
    """An input article. Unknown fields are kept and passed through to the enriched event.

    The JSON Schema generated from this model (``newsstream schema`` → ``schemas/article.schema.json``) accepts
    exactly what the worker enriches: ``id`` a string of 1-512 characters or a 64-bit integer, ``text`` with at
    least one non-whitespace character (the worker dead-letters blank text as ``empty_text``).
    """

    model_config = ConfigDict(extra="allow", str_strip_whitespace=False, title="Article")

    id: Annotated[str, WithJsonSchema({
        "anyOf": [{"type": "string", "minLength": 1, "maxLength": 512},
                  {"type": "integer", "minimum": _INT64[0], "maximum": _INT64[1]}],
        "description": "The article id; an integer id becomes its decimal string in the enriched event and the key",
    })] = Field(min_length=1, max_length=512)
    title: str | None = None
    text: str = Field(json_schema_extra={"pattern": r"\S", "description": "The body; not blank"})
    url: str | None = None
    source: str | None = None
    published_at: str | None = None
    language: str | None = None

    @field_validator("id", mode="before")
    @classmethod
    def _id_as_string(cls, value: Any) -> Any:
        # Integer ids are common in upstream systems; the Kafka key needs a string either way.
        if isinstance(value, float) and value.is_integer():
            value = int(value)  # 7.0 is the integer 7 in JSON (and to JSON Schema): same id, same key
        if isinstance(value, int) and not isinstance(value, bool):
            if not _INT64[0] <= value <= _INT64[1]:
                raise ValueError("an integer id must fit in 64 bits; send larger ids as strings")
            return str(value)
        return value


class Scored(BaseModel):
    label: str
    score: float = Field(ge=0, le=1)


class Origin(BaseModel):
    topic: str
    partition: int
    offset: int


class EnrichedEvent(BaseModel):
    """The enriched event of the default taxonomy (documentation and test-side validation; the worker builds the
    dict directly). :func:`enriched_event_model` gives the same model for any taxonomy, with each head's labels.

    Prediction fields win over input fields of the same name (an input ``topic`` field is overwritten).
    ``origin`` is ``null`` for offline ``newsstream classify`` output.
    """

    model_config = ConfigDict(extra="allow", title="EnrichedEvent")

    id: str = Field(min_length=1, max_length=512)
    title: str | None
    text: str
    url: str | None
    source: str | None
    published_at: str | None
    language: str | None
    topic: Scored
    topics: list[Scored]
    incident: Scored
    incidents: list[Scored]
    model: dict[str, str]
    schema_version: str
    processed_at: str
    origin: Origin | None


def enriched_event_model(taxonomy: Any) -> type[BaseModel]:
    """The enriched-event model of a bundle's taxonomy: per head, ``<head>: {label, score}`` and ``<plural>``,
    the top-k list, with the head's labels as an enum.

    >>> from streamer.taxonomy import Taxonomy
    >>> model = enriched_event_model(Taxonomy.from_dict({"heads": {"category": ["a", "b"]}}))
    >>> sorted(f for f in model.model_fields if f.startswith("categor"))
    ['categories', 'category']
    """
    from pydantic import create_model

    fields: dict[str, Any] = {
        name: (info.annotation, info) for name, info in EnrichedEvent.model_fields.items()
        if name not in ("topic", "topics", "incident", "incidents")
    }
    for head, labels in taxonomy.labels.items():
        scored = create_model(f"{head.title().replace('_', '')}Scored", __config__=ConfigDict(extra="forbid"),
                              label=(Literal[tuple(labels)], ...),  # type: ignore[arg-type]
                              score=(float, Field(ge=0, le=1)))
        fields[head] = (scored, ...)
        fields[taxonomy.plurals[head]] = (list[scored], Field(min_length=1))  # type: ignore[valid-type]
    return create_model("EnrichedEvent", __config__=ConfigDict(extra="allow", title="EnrichedEvent"), **fields)


@dataclass(frozen=True, slots=True)
class Rejection:
    reason: DeadLetterReason
    error: str


def parse_article(value: bytes | None, max_bytes: int | None = None) -> Article | Rejection:
    """Decode, parse and validate one message value. Never raises on bad input."""
    if value is None:
        return Rejection(DeadLetterReason.TOMBSTONE, "message has no value (tombstone)")
    if max_bytes is not None and len(value) > max_bytes:
        return Rejection(DeadLetterReason.TOO_LARGE, f"value is {len(value)} bytes, limit {max_bytes}")
    try:
        text = value.decode("utf-8")
    except UnicodeDecodeError as exc:
        return Rejection(DeadLetterReason.NOT_UTF8, f"value is not UTF-8: {exc}")
    try:
        obj = json.loads(text, parse_constant=_reject_constant, parse_float=_finite_float)
    except ValueError as exc:  # also int literals over Python's digit limit
        return Rejection(DeadLetterReason.INVALID_JSON, f"value is not JSON: {exc}")
    except RecursionError:
        return Rejection(DeadLetterReason.INVALID_JSON, "value is nested too deeply to parse")
    # A \uD800-\uDFFF escape without its pair decodes to a lone surrogate, which no UTF-8 output can carry.
    # Only escapes can produce one, so the full check runs only when the text has such an escape.
    if ("\\ud" in text or "\\uD" in text) and _has_lone_surrogate(obj):
        return Rejection(DeadLetterReason.INVALID_JSON, "value contains a lone UTF-16 surrogate escape")
    return validate_article(obj)


def _reject_constant(name: str) -> Any:
    # Python's json accepts NaN and Infinity; strict JSON readers downstream do not.
    raise ValueError(f"{name} is not valid JSON")


def _finite_float(literal: str) -> float:
    value = float(literal)
    if not math.isfinite(value):
        raise ValueError(f"number {literal[:40]} is out of range")
    return value


def _has_lone_surrogate(obj: Any) -> bool:
    try:
        json.dumps(obj, ensure_ascii=False).encode("utf-8")
    except UnicodeEncodeError:
        return True
    except (ValueError, RecursionError):
        return False  # not this check's concern
    return False


def validate_article(obj: Any) -> Article | Rejection:
    if not isinstance(obj, dict):
        return Rejection(DeadLetterReason.INVALID_SCHEMA, f"expected a JSON object, got {type(obj).__name__}")
    try:
        article = Article.model_validate(obj)
    except ValidationError as exc:
        problems = "; ".join(
            f"{'.'.join(str(p) for p in err['loc']) or '<root>'}: {err['msg']}" for err in exc.errors()[:5]
        )
        return Rejection(DeadLetterReason.INVALID_SCHEMA, problems)
    # A title alone is too little for the incident head to be trusted; upstream sends the body later anyway.
    if not article.text.strip():
        return Rejection(DeadLetterReason.EMPTY_TEXT, "article text is empty")
    return article


def enrich(
    article: Article,
    prediction: dict[str, Any],
    model: dict[str, str],
    processed_at: str,
    origin: dict[str, Any] | None,
) -> dict[str, Any]:
    """The enriched event: input fields, then predictions, model, schema version, time and origin."""
    event = article.model_dump(exclude_none=False)
    event.update(prediction)
    event["model"] = model
    event["schema_version"] = SCHEMA_VERSION
    event["processed_at"] = processed_at
    event["origin"] = origin
    return event
