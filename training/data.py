"""Labeled data: where it lives, how a row is validated, and the rules every training set obeys.

Rules (DEVELOPERS.md, issue 2): a bad row stops training with its file, line and field unless
``skip_invalid``; exact duplicate texts are dropped before any split; ids in ``newsevents/reserved.txt``
never reach training.
"""

from __future__ import annotations

import csv
import hashlib
import json
import os
from collections import Counter
from collections.abc import Iterable, Iterator
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from pydantic import (
    BaseModel,
    ConfigDict,
    ValidationError,
    ValidationInfo,
    create_model,
    field_validator,
    model_validator,
)

from streamer.taxonomy import DEFAULT, HEADS, Taxonomy

REPO_ROOT = Path(__file__).resolve().parent.parent
DATA_DIR_ENV = "NEWSSTREAM_DATA_DIR"


def data_dir(explicit: str | Path | None = None) -> Path:
    """``--data-dir`` beats ``$NEWSSTREAM_DATA_DIR`` beats ``../shared/datasets`` beside the repo."""
    if explicit:
        return Path(explicit)
    env = os.environ.get(DATA_DIR_ENV)
    if env:
        return Path(env)
    return REPO_ROOT.parent / "shared" / "datasets"


class DataError(ValueError):
    """A labeled file that cannot be used as it is; the message names file, line and field."""


class Labels(BaseModel):
    """The two heads' labels, validated against the taxonomy. A row may label one head only, but not none."""

    topic: str | None = None
    incident: str | None = None

    @field_validator("topic", "incident", mode="before")
    @classmethod
    def _blank_is_missing(cls, value: Any) -> Any:
        # CSV cannot say null: an empty cell means "this head is not labeled here".
        return None if isinstance(value, str) and not value.strip() else value

    @field_validator("topic")
    @classmethod
    def _topic_in_taxonomy(cls, value: str | None) -> str | None:
        if value is not None and value not in HEADS["topic"]:
            raise ValueError(f"{value!r} is not a topic label")
        return value

    @field_validator("incident")
    @classmethod
    def _incident_in_taxonomy(cls, value: str | None) -> str | None:
        if value is not None and value not in HEADS["incident"]:
            raise ValueError(f"{value!r} is not an incident label")
        return value

    @model_validator(mode="after")
    def _at_least_one_label(self) -> Labels:
        if self.topic is None and self.incident is None:
            raise ValueError("row needs a topic or an incident label (topic/incident)")
        return self


class TextRow(BaseModel):
    """The text part of a labeled row: what every taxonomy's rows share."""

    model_config = ConfigDict(extra="ignore", str_strip_whitespace=False)

    id: str
    title: str = ""
    text: str

    @field_validator("id")
    @classmethod
    def _id_not_empty(cls, value: str) -> str:
        if not value.strip():
            raise ValueError("id must not be empty")
        return value

    @field_validator("title", mode="before")
    @classmethod
    def _title_may_be_null(cls, value: Any) -> Any:
        # CSV and some exports write a missing headline as null/empty; the guideline allows untitled items.
        return "" if value is None else value

    @field_validator("text")
    @classmethod
    def _text_not_empty(cls, value: str) -> str:
        if not value.strip():
            raise ValueError("text must not be empty")
        return value


class LabeledRow(TextRow, Labels):
    """One labeled article of the default taxonomy (topic, incident)."""


def row_model(taxonomy: Taxonomy) -> type[TextRow]:
    """The labeled-row model of a taxonomy: ``id``, ``title``, ``text`` and one optional field per head, each
    validated against the head's labels; a row must label at least one head. The default taxonomy's is
    :class:`LabeledRow`.

    >>> Row = row_model(Taxonomy.from_dict({"heads": {"category": ["world", "sports"]}}))
    >>> Row(id="1", text="Cup final", category="sports").category
    'sports'
    """
    if taxonomy == DEFAULT:
        return LabeledRow
    heads = taxonomy.labels

    def blank_is_missing(cls: Any, value: Any) -> Any:
        return None if isinstance(value, str) and not value.strip() else value

    def in_taxonomy(cls: Any, value: Any, info: ValidationInfo) -> Any:
        if value is not None and value not in heads[str(info.field_name)]:
            shown = list(heads[str(info.field_name)])
            raise ValueError(f"{value!r} is not a {info.field_name} label (expected one of {shown})")
        return value

    def at_least_one(self: Any) -> Any:
        if all(getattr(self, head) is None for head in heads):
            raise ValueError(f"row needs a label for at least one head ({', '.join(heads)})")
        return self

    validators: dict[str, Any] = {
        "blank_is_missing": field_validator(*heads, mode="before")(blank_is_missing),
        "in_taxonomy": field_validator(*heads)(in_taxonomy),
        "at_least_one": model_validator(mode="after")(at_least_one),
    }
    fields: dict[str, Any] = {head: (str | None, None) for head in heads}
    return create_model(f"LabeledRow_{taxonomy.name}", __base__=TextRow, __validators__=validators, **fields)


@dataclass
class LoadReport:
    """What loading kept and dropped, so the card can say it."""

    files: list[str] = field(default_factory=list)
    read: int = 0
    invalid: int = 0
    duplicates: int = 0
    reserved: int = 0
    kept: int = 0
    errors: list[str] = field(default_factory=list)

    def as_dict(self) -> dict[str, Any]:
        return {
            "files": self.files,
            "read": self.read,
            "invalid": self.invalid,
            "duplicates_removed": self.duplicates,
            "reserved_removed": self.reserved,
            "kept": self.kept,
        }


def _raw_records(path: Path) -> Iterator[tuple[int, dict[str, Any] | str]]:
    """``(line number, record)``; a record that cannot even be parsed comes back as an error string."""
    suffix = path.suffix.lower()
    if suffix == ".csv":
        with path.open(encoding="utf-8", newline="") as fh:
            reader = csv.DictReader(fh)
            if reader.fieldnames is None:
                return
            # DictReader counts physical lines; a quoted cell may span several, so report where the row ends.
            for record in reader:
                yield reader.line_num, dict(record)
    elif suffix in (".jsonl", ".json", ".ndjson"):
        with path.open(encoding="utf-8") as fh:
            for lineno, line in enumerate(fh, 1):
                if not line.strip():
                    continue
                try:
                    record = json.loads(line)
                except json.JSONDecodeError as exc:
                    yield lineno, f"invalid JSON: {exc.msg}"
                    continue
                if not isinstance(record, dict):
                    yield lineno, "a line must be a JSON object"
                    continue
                yield lineno, record
    else:
        raise DataError(f"{path}: unsupported file type {suffix!r} (use .jsonl or .csv)")


def _describe(exc: ValidationError) -> str:
    parts = []
    for err in exc.errors():
        where = ".".join(str(p) for p in err["loc"]) or "row"
        parts.append(f"field {where!r}: {err['msg']}")
    return "; ".join(parts)


def read_rows(path: Path, skip_invalid: bool = False, report: LoadReport | None = None,
              taxonomy: Taxonomy | None = None) -> list[Any]:
    """Validate every row of one file against ``taxonomy`` (default: the news taxonomy). Raises
    :class:`DataError` naming file, line and field at the first bad row unless ``skip_invalid``."""
    model = row_model(taxonomy or DEFAULT)
    path = Path(path)
    report = report if report is not None else LoadReport()
    if not path.is_file():
        raise DataError(f"{path}: file not found")
    report.files.append(str(path))
    rows: list[Any] = []
    for lineno, record in _raw_records(path):
        report.read += 1
        if isinstance(record, str):
            message = f"{path}:{lineno}: {record}"
        else:
            try:
                rows.append(model.model_validate(record))
                continue
            except ValidationError as exc:
                message = f"{path}:{lineno}: {_describe(exc)}"
        if not skip_invalid:
            raise DataError(message)
        report.invalid += 1
        report.errors.append(message)
    return rows


def read_reserved(root: Path) -> frozenset[str]:
    """Ids kept for evaluation. Missing file → refuse: training blind to the reservation is not allowed."""
    path = Path(root) / "newsevents" / "reserved.txt"
    if not path.is_file():
        raise DataError(f"{path}: reserved-id list not found; it guards the held-out split")
    return frozenset(line.strip() for line in path.read_text(encoding="utf-8").splitlines() if line.strip())


def text_key(title: str, text: str) -> str:
    """Exact-duplicate key: the same title and text, byte for byte after outer whitespace."""
    return hashlib.sha1(f"{title.strip()}\x00{text.strip()}".encode()).hexdigest()


def clean(
    rows: Iterable[LabeledRow],
    reserved: frozenset[str],
    report: LoadReport,
    exclude_keys: set[str] | None = None,
) -> list[LabeledRow]:
    """Drop reserved ids and exact duplicates (first occurrence wins), before any split is made.

    ``exclude_keys`` removes rows whose text is also in another set (e.g. dev), so a mapped raw document
    cannot carry a dev row's text into training.
    """
    seen: set[str] = set(exclude_keys or ())
    kept: list[LabeledRow] = []
    for row in rows:
        if row.id in reserved:
            report.reserved += 1
            continue
        key = text_key(row.title, row.text)
        if key in seen:
            report.duplicates += 1
            continue
        seen.add(key)
        kept.append(row)
    report.kept += len(kept)
    return kept


def load_labeled(
    paths: Iterable[Path],
    root: Path | None = None,
    skip_invalid: bool = False,
    report: LoadReport | None = None,
    reserved: frozenset[str] | None = None,
) -> tuple[list[LabeledRow], LoadReport]:
    """Read, validate, drop reserved ids and duplicates across all ``paths`` together."""
    report = report if report is not None else LoadReport()
    reserved = reserved if reserved is not None else read_reserved(data_dir(root))
    rows: list[LabeledRow] = []
    for path in paths:
        rows.extend(read_rows(Path(path), skip_invalid=skip_invalid, report=report))
    return clean(rows, reserved, report), report


def label_counts(rows: Iterable[Any], heads: Iterable[str] = tuple(HEADS)) -> dict[str, dict[str, int]]:
    heads = tuple(heads)
    counts: dict[str, Counter[str]] = {head: Counter() for head in heads}
    for row in rows:
        for head in heads:
            label = getattr(row, head)
            if label is not None:
                counts[head][label] += 1
    return {head: dict(sorted(c.items(), key=lambda kv: (-kv[1], kv[0]))) for head, c in counts.items()}


def sha256_path(path: Path) -> str:
    digest = hashlib.sha256()
    with Path(path).open("rb") as fh:
        while chunk := fh.read(1 << 20):
            digest.update(chunk)
    return digest.hexdigest()


def guardian_docs(root: Path, limit: int) -> list[tuple[str, str]]:
    """The first ``limit`` full-length Guardian articles as ``(title, text)``: the throughput workload.
    Empty when the corpus is not under ``root``."""
    path = root / "guardian" / "articles.jsonl"
    docs: list[tuple[str, str]] = []
    if path.is_file():
        with path.open(encoding="utf-8") as fh:
            for line in fh:
                record = json.loads(line)
                docs.append((str(record.get("title") or ""), str(record.get("text") or "")))
                if len(docs) >= limit:
                    break
    return docs
