"""The event contracts, generated from the pydantic models: JSON Schemas and an AsyncAPI 3.0 document.

``newsstream schema`` writes them to ``schemas/`` (``--check`` compares instead); a test fails when the committed
files drift from the models. The enriched event's schema follows a taxonomy (the default one, or a bundle's).

>>> sorted(article_schema()["required"])
['id', 'text']
>>> enriched_schema()["properties"]["topic"]["$ref"]
'#/$defs/TopicScored'
"""

from __future__ import annotations

import json
from typing import Any

from streamer.pipeline import (
    _MAX_ERROR_HEADER_CHARS,
    _MAX_KEY_BYTES,
    _MAX_ORIGINAL_HEADER_BYTES,
    ORIGINAL_HEADER_PREFIX,
)
from streamer.schemas import SCHEMA_VERSION, Article, DeadLetterReason, enriched_event_model
from streamer.taxonomy import DEFAULT, Taxonomy

DRAFT = "https://json-schema.org/draft/2020-12/schema"
BINDING = "0.5.0"

#: Dead-letter headers: name → (meaning, JSON Schema of the value as text). The dead letter's key and value are
#: the input record's, untouched, unless the record is too large (the bounded form, below).
DEAD_LETTER_HEADERS: dict[str, tuple[str, dict[str, Any]]] = {
    "reason": ("Why the record was not enriched", {"type": "string", "enum": [r.value for r in DeadLetterReason]}),
    "error": (f"The error in words (at most {_MAX_ERROR_HEADER_CHARS:,} characters)", {"type": "string"}),
    "origin-topic": ("The input record's topic", {"type": "string"}),
    "origin-partition": ("The input record's partition", {"type": "string", "pattern": "^[0-9]+$"}),
    "origin-offset": ("The input record's offset", {"type": "string", "pattern": "^[0-9]+$"}),
    "origin-timestamp": ("The input record's timestamp (ms since the epoch; -1 if none)",
                         {"type": "string", "pattern": "^-?[0-9]+$"}),
    "truncated": ("Bounded form only: 'true' — the value is a prefix of the input value (or none)",
                  {"type": "string", "const": "true"}),
    "original-value-bytes": ("Bounded form: the input value's size in bytes",
                             {"type": "string", "pattern": "^[0-9]+$"}),
    "original-value-sha256": ("Bounded form: sha256 of the whole input value, hex",
                              {"type": "string", "pattern": "^[0-9a-f]{64}$"}),
    "original-value-null": ("Bounded form: 'true' when the input was a tombstone", {"type": "string", "const": "true"}),
    "original-key-bytes": (f"Bounded form, key over {_MAX_KEY_BYTES:,} bytes: the input key's size (the key is "
                           "cut to that)",
                           {"type": "string", "pattern": "^[0-9]+$"}),
    "original-key-sha256": (f"Bounded form, key over {_MAX_KEY_BYTES:,} bytes: sha256 of the whole input key, hex",
                            {"type": "string", "pattern": "^[0-9a-f]{64}$"}),
    "original-headers-dropped": ("Bounded form: how many input headers were too large to copy",
                                 {"type": "string", "pattern": "^[0-9]+$"}),
}

EVENT_HEADERS: dict[str, tuple[str, dict[str, Any]]] = {
    "schema-version": ("Bumped when a field of the event changes meaning or disappears",
                       {"type": "string", "const": SCHEMA_VERSION}),
    "model-name": ("The model bundle's name", {"type": "string"}),
    "model-version": ("The model bundle's version", {"type": "string"}),
    "content-type": ("Always application/json", {"type": "string", "const": "application/json"}),
}


def article_schema() -> dict[str, Any]:
    """The input article (``schemas/article.schema.json``)."""
    schema = Article.model_json_schema()
    return {"$schema": DRAFT, "$id": "article.schema.json", **schema}


def enriched_schema(taxonomy: Taxonomy = DEFAULT) -> dict[str, Any]:
    """The enriched event for ``taxonomy`` (``schemas/enriched.schema.json`` for the default)."""
    schema = enriched_event_model(taxonomy).model_json_schema()
    schema["description"] = (
        "An input article with the model's predictions: per head the best label and score, and the top-k list. "
        f"Taxonomy {taxonomy.name!r}. Input fields are passed through (unknown ones too); prediction fields win "
        "over input fields of the same name. `origin` is null for offline `newsstream classify` output.")
    return {"$schema": DRAFT, "$id": "enriched.schema.json", **schema}


def _headers(spec: dict[str, tuple[str, dict[str, Any]]], required: list[str]) -> dict[str, Any]:
    return {"type": "object", "required": required,
            "properties": {name: {**schema, "description": meaning} for name, (meaning, schema) in spec.items()},
            "additionalProperties": True}


def _for_asyncapi(schema: dict[str, Any], defs: dict[str, Any]) -> dict[str, Any]:
    """A JSON Schema with its ``$defs`` moved to AsyncAPI's components (references rewritten)."""
    body = {k: v for k, v in schema.items() if k not in ("$schema", "$id", "$defs")}
    defs.update(schema.get("$defs", {}))
    text = json.dumps(body).replace('"#/$defs/', '"#/components/schemas/')
    return dict(json.loads(text))


def asyncapi(taxonomy: Taxonomy = DEFAULT, version: str = SCHEMA_VERSION) -> dict[str, Any]:
    """The AsyncAPI 3.0 document of the three channels, with the worker's default topic names and group."""
    from types import SimpleNamespace

    from streamer.settings import Settings

    # The declared defaults, not Settings(): the environment must not leak into a committed document.
    s = SimpleNamespace(**{name: field.default for name, field in Settings.model_fields.items()})
    defs: dict[str, Any] = {}
    schemas = {"Article": _for_asyncapi(article_schema(), defs),
               "EnrichedEvent": _for_asyncapi(enriched_schema(taxonomy), defs)}
    schemas.update({k: json.loads(json.dumps(v).replace('"#/$defs/', '"#/components/schemas/'))
                    for k, v in defs.items()})
    key = {"type": "string", "description": "The article id (an integer id as its decimal string)"}
    channels = {
        "articles": (s.input_topic, "Articles to classify, produced by your systems.", "Article"),
        "articlesEnriched": (s.output_topic, "Each article with its predictions.", "EnrichedEvent"),
        "articlesDeadLetters": (s.dlq_topic, "Every record the worker could not enrich, with why and where from.",
                                "DeadLetter"),
    }
    return {
        "asyncapi": "3.0.0",
        "info": {
            "title": "newsstream",
            "version": version,
            "description": ("A Kafka worker that classifies news articles by topic and incident type. It consumes "
                            "`articles`, publishes `articles.enriched`, and sends what it cannot process to "
                            "`articles.dlq` with the reason and origin. Topic names and the group are settings "
                            "(NEWSSTREAM_INPUT_TOPIC, NEWSSTREAM_OUTPUT_TOPIC, NEWSSTREAM_DLQ_TOPIC, "
                            "NEWSSTREAM_GROUP_ID); the defaults are shown. Delivery: at least once (offsets are "
                            "committed after the outputs are acknowledged), or exactly once with transactions."),
        },
        "defaultContentType": "application/json",
        "servers": {"kafka": {"host": s.bootstrap_servers, "protocol": "kafka",
                              "description": "The Kafka cluster (NEWSSTREAM_BOOTSTRAP_SERVERS)."}},
        "channels": {
            name: {"address": address, "description": description,
                   "messages": {message: {"$ref": f"#/components/messages/{message}"}},
                   "bindings": {"kafka": {"topic": address, "bindingVersion": BINDING}}}
            for name, (address, description, message) in channels.items()
        },
        "operations": {
            "consumeArticles": {
                "action": "receive", "channel": {"$ref": "#/channels/articles"},
                "summary": "The worker reads articles in batches, as one consumer group.",
                "messages": [{"$ref": "#/channels/articles/messages/Article"}],
                "bindings": {"kafka": {"groupId": {"type": "string", "enum": [s.group_id]},
                                       "bindingVersion": BINDING}},
            },
            "publishEnriched": {
                "action": "send", "channel": {"$ref": "#/channels/articlesEnriched"},
                "summary": "One enriched event per valid article, keyed by its id.",
                "messages": [{"$ref": "#/channels/articlesEnriched/messages/EnrichedEvent"}],
            },
            "publishDeadLetters": {
                "action": "send", "channel": {"$ref": "#/channels/articlesDeadLetters"},
                "summary": "One dead letter per record that was not enriched.",
                "messages": [{"$ref": "#/channels/articlesDeadLetters/messages/DeadLetter"}],
            },
        },
        "components": {
            "schemas": schemas,
            "messages": {
                "Article": {
                    "name": "Article", "title": "An article", "contentType": "application/json",
                    "summary": "UTF-8 JSON (RFC 8259: no BOM, no NaN/Infinity, numbers within double range, no "
                               "unpaired surrogate escapes) of at most NEWSSTREAM_MAX_MESSAGE_BYTES.",
                    "payload": {"$ref": "#/components/schemas/Article"},
                    "bindings": {"kafka": {"key": {"type": "string", "description": "Any key, or none; the "
                                                   "enriched event is keyed by the article id"},
                                           "bindingVersion": BINDING}},
                },
                "EnrichedEvent": {
                    "name": "EnrichedEvent", "title": "An enriched event", "contentType": "application/json",
                    "payload": {"$ref": "#/components/schemas/EnrichedEvent"},
                    "headers": _headers(EVENT_HEADERS, list(EVENT_HEADERS)),
                    "bindings": {"kafka": {"key": key, "bindingVersion": BINDING}},
                },
                "DeadLetter": {
                    "name": "DeadLetter", "title": "A dead letter",
                    "contentType": "application/octet-stream",
                    "summary": "The input record's key and value, untouched; bounded when too large.",
                    "description": (
                        "The value is the input value byte for byte (it may be anything: that is why it is here). "
                        "When the record is larger than the dead-letter topic takes, the dead letter is *bounded*: "
                        "the value is a prefix (NEWSSTREAM_DEAD_LETTER_PREFIX_BYTES, default 64 KiB), with the "
                        "`truncated`, `original-value-bytes` and `original-value-sha256` headers, and the origin "
                        "headers say where the whole record can be read while retention holds. The input "
                        f"record's own headers follow, each as `{ORIGINAL_HEADER_PREFIX}<name>`."),
                    "payload": {"description": "The input value (bytes), or its prefix in the bounded form"},
                    "headers": _headers(DEAD_LETTER_HEADERS, ["reason", "error", "origin-topic", "origin-partition",
                                                              "origin-offset", "origin-timestamp"]),
                    "bindings": {"kafka": {"key": {"description": "The input record's key, untouched (cut to 1 KiB "
                                                   "in the bounded form)"},
                                           "bindingVersion": BINDING}},
                },
            },
        },
    }


def files(taxonomy: Taxonomy = DEFAULT) -> dict[str, str]:
    """File name → exact text, as ``newsstream schema`` writes them."""
    import yaml

    def as_json(obj: dict[str, Any]) -> str:
        return json.dumps(obj, indent=2, ensure_ascii=False) + "\n"

    header = ("# Generated by `newsstream schema` from the pydantic models (streamer/schemas.py, streamer/contracts.py)"
              "; do not edit.\n")
    return {
        "article.schema.json": as_json(article_schema()),
        "enriched.schema.json": as_json(enriched_schema(taxonomy)),
        "asyncapi.yaml": header + yaml.safe_dump(asyncapi(taxonomy), sort_keys=False, allow_unicode=True, width=110),
        "DEAD_LETTERS.md": DEAD_LETTERS_INTRO + "\n## Reasons\n\n" + reasons_markdown() + "\n\n## Headers\n\n"
                           + dead_letter_markdown() + "\n",
    }


DEAD_LETTERS_INTRO = """# Dead letters (`articles.dlq`)

<!-- Generated by `newsstream schema`; do not edit. -->

Every input record that is not enriched becomes exactly one dead letter; none is dropped. A dead letter carries the
input record's **key and value untouched** and headers saying why and where from, so it can be fixed and replayed.

**Bounded form.** A record too large for the dead-letter topic (over `NEWSSTREAM_DLQ_MAX_MESSAGE_BYTES`, else the
producer's `max_request_size`) is sent *bounded*: the value is its first `NEWSSTREAM_DEAD_LETTER_PREFIX_BYTES`
(default 64 KiB), `truncated: true` with the original size and sha256, and a key over 1 KiB is cut with its size
and sha256. The `origin-*` headers point at the whole record in the input topic. If the broker refuses even that,
the value is halved, then dropped (`minimal`); if the smallest form is refused the worker holds the batch, backs
off and reports not ready (`newsstream_dead_letters_refused_total`).
"""


def dead_letter_markdown() -> str:
    """The dead-letter contract as a table (``schemas/dead-letter.md``)."""
    lines = ["| header | meaning | value |", "|---|---|---|"]
    for name, (meaning, schema) in DEAD_LETTER_HEADERS.items():
        value = (", ".join(f"`{v}`" for v in schema["enum"]) if "enum" in schema
                 else f"`{schema['const']}`" if "const" in schema
                 else f"text matching `{schema['pattern']}`" if "pattern" in schema else "text")
        lines.append(f"| `{name}` | {meaning} | {value} |")
    lines.append(f"| `{ORIGINAL_HEADER_PREFIX}<name>` | Each header of the input record, renamed so ours win "
                 f"(dropped in the bounded form if together over {_MAX_ORIGINAL_HEADER_BYTES:,} bytes; then "
                 "`original-headers-dropped`) | bytes |")
    return "\n".join(lines)


def reasons_markdown() -> str:
    meanings = {
        "invalid_json": "not JSON (RFC 8259 UTF-8 text: no BOM, NaN, Infinity, overflowing numbers, unpaired "
                        "surrogate escapes, raw control characters, nesting past the parser's limit)",
        "invalid_schema": "JSON, but not an article (`article.schema.json`), or the enriched event cannot be encoded",
        "empty_text": "`text` is blank (only whitespace)",
        "too_large": "the value is over NEWSSTREAM_MAX_MESSAGE_BYTES",
        "not_utf8": "the value is not UTF-8",
        "tombstone": "the record has no value",
        "classification_error": "the model raised on this article (its batch-mates are enriched)",
        "output_too_large": "the enriched event is larger than the output topic takes",
    }
    lines = ["| reason | when |", "|---|---|"]
    lines += [f"| `{r.value}` | {meanings[r.value]} |" for r in DeadLetterReason]
    return "\n".join(lines)
