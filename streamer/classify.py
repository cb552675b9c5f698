"""Offline classification (``newsstream classify``):
 JSONL articles in, one enriched JSON line out per article — the worker's schema.

Same validation and the same :func:`streamer.schemas.enrich` as the worker; ``origin`` is ``null`` because
there is no Kafka record. A bad line is reported on stderr with its number and skipped; ``--strict`` makes
any bad line a non-zero exit (the rest is still processed).
"""

from __future__ import annotations

import json
import sys
from collections.abc import Iterator
from pathlib import Path
from typing import IO

from streamer.artifact import ModelBundle, ModelError
from streamer.schemas import Article, Rejection, enrich, validate_article


def load_model(path: Path | None) -> ModelBundle:
    import os

    from streamer.model_watch import default_models_dir, load_checked, resolve

    location = path or Path(os.environ.get("NEWSSTREAM_MODEL_PATH") or default_models_dir())
    return load_checked(resolve(location))


def _lines(fh: IO[str]) -> Iterator[tuple[int, str]]:
    for number, line in enumerate(fh, start=1):
        if line.strip():
            yield number, line


def classify_stream(bundle: ModelBundle, source: IO[str], sink: IO[str], batch_size: int,
                    errors: IO[str], name: str = "<stdin>") -> tuple[int, int]:
    """Returns ``(classified, bad)``."""
    from streamer.pipeline import classify_articles, dumps, now_iso

    model = bundle.describe()
    classified = bad = 0
    batch: list[tuple[int, Article]] = []

    def flush() -> None:
        nonlocal classified, bad
        predictions = classify_articles(bundle, [a for _, a in batch])
        processed_at = now_iso()
        for (number, article), prediction in zip(batch, predictions, strict=True):
            if isinstance(prediction, Exception):
                bad += 1
                print(f"{name}:{number}: classification_error: {prediction}", file=errors)
                continue
            sink.write(dumps(enrich(article, prediction, model, processed_at, None)).decode("utf-8") + "\n")
            classified += 1
        batch.clear()

    for number, line in _lines(source):
        try:
            parsed: Article | Rejection = validate_article(json.loads(line))
        except ValueError as exc:
            print(f"{name}:{number}: invalid_json: {exc}", file=errors)
            bad += 1
            continue
        if isinstance(parsed, Rejection):
            print(f"{name}:{number}: {parsed.reason.value}: {parsed.error}", file=errors)
            bad += 1
            continue
        batch.append((number, parsed))
        if len(batch) >= batch_size:
            flush()
    if batch:
        flush()
    return classified, bad


def run(model: Path | None, input: str, output: str, batch_size: int, strict: bool) -> int:
    try:
        bundle = load_model(model)
    except ModelError as exc:
        print(f"newsstream classify: cannot load the model: {exc}", file=sys.stderr)
        return 2
    try:
        source = sys.stdin if input == "-" else open(input, encoding="utf-8")  # noqa: SIM115
    except OSError as exc:
        print(f"newsstream classify: {exc}", file=sys.stderr)
        return 2
    sink = sys.stdout if output == "-" else open(output, "w", encoding="utf-8")  # noqa: SIM115
    try:
        classified, bad = classify_stream(bundle, source, sink, max(1, batch_size), sys.stderr,
                                          "<stdin>" if input == "-" else input)
    finally:
        if source is not sys.stdin:
            source.close()
        if sink is not sys.stdout:
            sink.close()
    print(f"classified {classified} article(s), {bad} bad line(s) with {bundle.name} {bundle.version}",
          file=sys.stderr)
    return 1 if bad and strict else 0
