"""Label-only annotation files: our own annotators' labels joined to the raw text in the shared datasets.

An annotation file (``training/annotations/*.jsonl``) holds one JSON object a line,
``{"id", "topic", "incident", "sure"}`` — labels only. The text stays in ``../shared/datasets`` (research
licences: it is never committed); :func:`resolve` reads it by id, with the same id scheme as newsevents:

- ``huffpost:<N>``: 0-based line N of the HuffPost slice; title = headline, text = short_description
  (the headline again when the lede is empty, as in the mapped HuffPost rows).
- ``guardian:<section>/<num>``: the ``id`` field of ``guardian/articles.jsonl``; the file has no headline,
  so the title is empty (as in newsevents).
- ``wikicurrent:<file-stem>:<N>``: 0-based line N of ``wiki-current-events/<file-stem>.jsonl``, untitled.
- ``agnewstrain:<N>``: 0-based line N of ``ag-news-train-sample5k/train.csv`` (no header); its text column is
  already title + " " + description, so the title is empty.
- ``agnews:<N>``: 0-based data row N of ``ag-news-test/test.csv`` (title and description columns). Every such
  row is either reserved or in newsevents, so annotations cannot use it; it is resolvable so the leak guard
  can read reserved texts.
- ``bbc:<section>/<file>``: first line is the title, the rest the text.
- ``reuters:<NEWID>``: Reuters-21578 ``<TITLE>`` and ``<BODY>``.
- ``casie:<stem>``: ``info.title`` and ``content`` of ``casie/annotation/<stem>.json``.
- ``satp:<split>:<line>``, ``insightcrime:<split>:<line>``: 0-based line of the ConfliBERT TSV, first column,
  untitled.

Each row is validated (labels in the taxonomy, id resolvable, id neither reserved nor already in newsevents
train or dev); a bad row stops training with file and line unless ``skip_invalid``. A row whose text is a
near-duplicate of a reserved or dev document (AG News repeats items across its splits) is dropped and counted.
"""

from __future__ import annotations

import csv
import html
import json
import re
from collections import Counter
from collections.abc import Iterable, Sequence
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from pydantic import ConfigDict, ValidationError, field_validator

from streamer.taxonomy import HEADS
from training.data import REPO_ROOT, DataError, LabeledRow, Labels, sha256_path

ANNOTATION_DIR = REPO_ROOT / "training" / "annotations"

csv.field_size_limit(1 << 30)


class AnnotationLabel(Labels):
    """One label-only row. ``sure`` is kept for the counts; unsure rows are trained on, as in newsevents."""

    model_config = ConfigDict(extra="ignore")

    id: str
    sure: bool = True

    @field_validator("id")
    @classmethod
    def _id_shape(cls, value: str) -> str:
        value = value.strip()
        if ":" not in value:
            raise ValueError("id must look like <corpus>:<key>")
        return value


# --------------------------------------------------------------------------------------------------------
# id → (title, text). Each corpus is read once per call, and only for the ids asked for.
# --------------------------------------------------------------------------------------------------------


def _split_id(doc_id: str) -> tuple[str, str]:
    corpus, _, key = doc_id.partition(":")
    return corpus, key


def _by_line(path: Path, wanted: set[int]) -> dict[int, str]:
    out: dict[int, str] = {}
    if not wanted or not path.is_file():
        return out
    last = max(wanted)
    with path.open(encoding="utf-8") as fh:
        for n, line in enumerate(fh):
            if n in wanted:
                out[n] = line
            if n >= last:
                break
    return out


def _ints(keys: Iterable[str]) -> dict[str, int]:
    out: dict[str, int] = {}
    for key in keys:
        if key.isdigit():
            out[key] = int(key)
    return out


def _resolve_huffpost(root: Path, keys: set[str]) -> dict[str, tuple[str, str]]:
    nums = _ints(keys)
    lines = _by_line(root / "huffpost-head10k" / "News_Category_Dataset_v3.head10000.jsonl", set(nums.values()))
    out = {}
    for key, n in nums.items():
        if n in lines:
            record = json.loads(lines[n])
            title = str(record.get("headline") or "").strip()
            text = str(record.get("short_description") or "").strip()
            out[key] = (title, text or title)
    return out


def _resolve_guardian(root: Path, keys: set[str]) -> dict[str, tuple[str, str]]:
    path = root / "guardian" / "articles.jsonl"
    out: dict[str, tuple[str, str]] = {}
    if not keys or not path.is_file():
        return out
    wanted = {f"guardian:{k}" for k in keys}
    with path.open(encoding="utf-8") as fh:
        for line in fh:
            record = json.loads(line)
            doc_id = str(record.get("id"))
            if doc_id in wanted:
                out[doc_id.partition(":")[2]] = ("", str(record.get("text") or ""))
    return out


def _resolve_wikicurrent(root: Path, keys: set[str]) -> dict[str, tuple[str, str]]:
    out: dict[str, tuple[str, str]] = {}
    by_stem: dict[str, dict[str, int]] = {}
    for key in keys:
        stem, _, num = key.rpartition(":")
        if num.isdigit() and re.fullmatch(r"events_\d{4}-\d{4}", stem):
            by_stem.setdefault(stem, {})[key] = int(num)
    for stem, nums in by_stem.items():
        lines = _by_line(root / "wiki-current-events" / f"{stem}.jsonl", set(nums.values()))
        for key, n in nums.items():
            if n in lines:
                out[key] = ("", str(json.loads(lines[n]).get("text") or ""))
    return out


def _csv_rows(path: Path, wanted: set[int], skip_header: bool) -> dict[int, list[str]]:
    out: dict[int, list[str]] = {}
    if not wanted or not path.is_file():
        return out
    with path.open(encoding="utf-8", newline="") as fh:
        reader = csv.reader(fh)
        if skip_header:
            next(reader, None)
        for n, record in enumerate(reader):
            if n in wanted:
                out[n] = record
    return out


def _ag_clean(value: str) -> str:
    """AG News escapes entities without the ampersand ("There #39;s"); newsevents rows carry them decoded."""
    return html.unescape(re.sub(r"(?<!&)#(\d+);", r"&#\1;", value)).strip()


def _resolve_agnewstrain(root: Path, keys: set[str]) -> dict[str, tuple[str, str]]:
    nums = _ints(keys)
    rows = _csv_rows(root / "ag-news-train-sample5k" / "train.csv", set(nums.values()), skip_header=False)
    return {key: ("", _ag_clean(rows[n][0])) for key, n in nums.items() if rows.get(n)}


def _resolve_agnews_test(root: Path, keys: set[str]) -> dict[str, tuple[str, str]]:
    nums = _ints(keys)
    rows = _csv_rows(root / "ag-news-test" / "test.csv", set(nums.values()), skip_header=True)
    return {
        key: (_ag_clean(rows[n][1]), _ag_clean(rows[n][2]))
        for key, n in nums.items()
        if n in rows and len(rows[n]) >= 3
    }


def _resolve_bbc(root: Path, keys: set[str]) -> dict[str, tuple[str, str]]:
    out = {}
    base = root / "bbc-news" / "bbc"
    for key in keys:
        section, _, name = key.partition("/")
        path = base / section / name
        if "/" in name or ".." in key or not path.is_file():
            continue
        raw = path.read_bytes()
        try:
            content = raw.decode("utf-8")
        except UnicodeDecodeError:
            content = raw.decode("latin-1")  # sport/199.txt is Latin-1 (bbc-news/SOURCE.md)
        title, _, body = content.strip().partition("\n")
        out[key] = (title.strip(), body.strip())
    return out


_REUTERS_DOC = re.compile(r'<REUTERS[^>]*NEWID="(\d+)"[^>]*>(.*?)</REUTERS>', re.S)
_REUTERS_TITLE = re.compile(r"<TITLE>(.*?)</TITLE>", re.S)
_REUTERS_BODY = re.compile(r"<BODY>(.*?)</BODY>", re.S)


def _resolve_reuters(root: Path, keys: set[str]) -> dict[str, tuple[str, str]]:
    out: dict[str, tuple[str, str]] = {}
    if not keys:
        return out
    for path in sorted((root / "reuters21578").glob("reut2-*.sgm")):
        content = path.read_bytes().decode("latin-1")
        for match in _REUTERS_DOC.finditer(content):
            if match.group(1) not in keys:
                continue
            title = _REUTERS_TITLE.search(match.group(2))
            body = _REUTERS_BODY.search(match.group(2))
            text = html.unescape(body.group(1)).replace("\x03", "").strip() if body else ""
            out[match.group(1)] = (html.unescape(title.group(1)).strip() if title else "", text)
    return out


def _resolve_casie(root: Path, keys: set[str]) -> dict[str, tuple[str, str]]:
    out = {}
    for key in keys:
        path = root / "casie" / "annotation" / f"{key}.json"
        if "/" in key or not path.is_file():
            continue
        record = json.loads(path.read_text(encoding="utf-8"))
        info = record.get("info") or {}
        out[key] = (str(info.get("title") or "").strip(), str(record.get("content") or ""))
    return out


def _tsv_resolver(folder: str) -> Any:
    def resolve(root: Path, keys: set[str]) -> dict[str, tuple[str, str]]:
        out: dict[str, tuple[str, str]] = {}
        by_split: dict[str, dict[str, int]] = {}
        for key in keys:
            split, _, num = key.partition(":")
            if split in ("train", "dev", "test") and num.isdigit():
                by_split.setdefault(split, {})[key] = int(num)
        for split, nums in by_split.items():
            path = root / "conflibert" / folder / f"{split}.tsv"
            wanted = set(nums.values())
            found: dict[int, str] = {}
            if path.is_file():
                with path.open(encoding="utf-8", newline="") as fh:
                    for n, record in enumerate(csv.reader(fh, delimiter="\t")):
                        if n in wanted and record:
                            found[n] = record[0]
            out.update({key: ("", found[n]) for key, n in nums.items() if n in found})
        return out

    return resolve


RESOLVERS: dict[str, Any] = {
    "huffpost": _resolve_huffpost,
    "guardian": _resolve_guardian,
    "wikicurrent": _resolve_wikicurrent,
    "agnewstrain": _resolve_agnewstrain,
    "agnews": _resolve_agnews_test,
    "bbc": _resolve_bbc,
    "reuters": _resolve_reuters,
    "casie": _resolve_casie,
    "satp": _tsv_resolver("satp_relevant"),
    "insightcrime": _tsv_resolver("insightCrime"),
}


def resolve(root: Path, ids: Iterable[str]) -> dict[str, tuple[str, str]]:
    """``id → (title, text)`` for every id that names an existing raw document; unknown ids are absent."""
    by_corpus: dict[str, set[str]] = {}
    for doc_id in ids:
        corpus, key = _split_id(doc_id)
        if corpus in RESOLVERS and key:
            by_corpus.setdefault(corpus, set()).add(key)
    out: dict[str, tuple[str, str]] = {}
    for corpus, keys in by_corpus.items():
        for key, doc in RESOLVERS[corpus](Path(root), keys).items():
            if doc[1].strip() or doc[0].strip():
                out[f"{corpus}:{key}"] = doc
    return out


def near_key(title: str, text: str) -> str:
    """The first 50 letters and digits of title + text, lower-cased: how AG News' cross-split repeats are
    caught (ag-news-train-sample5k/SOURCE.md), and a cheap guard for any copy of a held-out document."""
    joined = re.sub(r"[^a-z0-9]", "", f"{title} {text}".lower())
    return joined[:50]


# --------------------------------------------------------------------------------------------------------
# Loading
# --------------------------------------------------------------------------------------------------------


@dataclass
class AnnotationReport:
    files: list[dict[str, Any]] = field(default_factory=list)
    read: int = 0
    invalid: int = 0
    repeated_ids: int = 0
    repeated_ids_disagreeing: int = 0
    near_duplicates_of_heldout: int = 0
    kept: int = 0
    unsure: int = 0
    by_file: dict[str, dict[str, Any]] = field(default_factory=dict)
    by_source: dict[str, int] = field(default_factory=dict)
    errors: list[str] = field(default_factory=list)

    def as_dict(self) -> dict[str, Any]:
        return {
            "files": self.files,
            "read": self.read,
            "invalid": self.invalid,
            "repeated_ids_removed": self.repeated_ids,
            "repeated_ids_disagreeing": self.repeated_ids_disagreeing,
            "near_duplicates_of_heldout_removed": self.near_duplicates_of_heldout,
            "kept": self.kept,
            "unsure": self.unsure,
            "counts_by_file": self.by_file,
            "rows_by_source": self.by_source,
        }


def is_label_only(path: Path) -> bool:
    """A JSONL file whose first record has an id and labels but no ``text``: an annotation file."""
    path = Path(path)
    if path.suffix.lower() not in (".jsonl", ".ndjson", ".json") or not path.is_file():
        return False
    with path.open(encoding="utf-8") as fh:
        for line in fh:
            if line.strip():
                try:
                    record = json.loads(line)
                except json.JSONDecodeError:
                    return False
                return isinstance(record, dict) and "id" in record and "text" not in record
    return False


def eval_ids(directory: Path = ANNOTATION_DIR) -> frozenset[str]:
    """Ids of our own evaluation rows (``eval/*.jsonl``): held out of training like dev."""
    folder = Path(directory) / "eval"
    ids: set[str] = set()
    for path in sorted(folder.glob("*.jsonl")) if folder.is_dir() else []:
        ids |= {json.loads(line)["id"] for line in path.read_text(encoding="utf-8").splitlines() if line.strip()}
    return frozenset(ids)


def default_files(directory: Path = ANNOTATION_DIR) -> list[Path]:
    return sorted(p for p in Path(directory).glob("*.jsonl") if p.is_file()) if Path(directory).is_dir() else []


def heldout_keys(root: Path, reserved: Iterable[str], dev_rows: Sequence[LabeledRow]) -> set[str]:
    """Near-duplicate keys of every reserved and dev document (reserved texts resolved from the raw corpora)."""
    keys = {near_key(r.title, r.text) for r in dev_rows}
    keys |= {near_key(title, text) for title, text in resolve(root, reserved).values()}
    keys.discard("")
    return keys


def load_annotations(
    paths: Sequence[Path],
    root: Path,
    reserved: frozenset[str],
    newsevents_ids: set[str] | frozenset[str],
    heldout: set[str] | None = None,
    skip_invalid: bool = False,
    report: AnnotationReport | None = None,
) -> tuple[list[LabeledRow], AnnotationReport]:
    """Validate label-only files and join them to their text. The first label for a repeated id wins.

    Refused (``DataError`` with file and line, or skipped and counted with ``skip_invalid``): bad JSON, labels
    outside the taxonomy, an id no raw corpus resolves, a reserved id, an id already in newsevents train/dev.
    Dropped and counted: near-duplicates of a reserved or dev document (``heldout`` keys).
    """
    report = report if report is not None else AnnotationReport()
    parsed: list[tuple[Path, int, AnnotationLabel]] = []

    def bad(message: str) -> None:
        if not skip_invalid:
            raise DataError(message)
        report.invalid += 1
        report.errors.append(message)

    for path in paths:
        path = Path(path)
        if not path.is_file():
            raise DataError(f"{path}: file not found")
        report.files.append({"path": str(path), "sha256": sha256_path(path)})
        with path.open(encoding="utf-8") as fh:
            for lineno, line in enumerate(fh, 1):
                if not line.strip():
                    continue
                report.read += 1
                try:
                    record = json.loads(line)
                except json.JSONDecodeError as exc:
                    bad(f"{path}:{lineno}: invalid JSON: {exc.msg}")
                    continue
                if not isinstance(record, dict):
                    bad(f"{path}:{lineno}: a line must be a JSON object")
                    continue
                try:
                    label = AnnotationLabel.model_validate(record)
                except ValidationError as exc:
                    fields = "; ".join(
                        f"field {'.'.join(str(p) for p in e['loc']) or 'row'!r}: {e['msg']}" for e in exc.errors()
                    )
                    bad(f"{path}:{lineno}: {fields}")
                    continue
                if label.id in reserved:
                    bad(f"{path}:{lineno}: id {label.id!r} is reserved for evaluation (newsevents/reserved.txt)")
                    continue
                if label.id in newsevents_ids:
                    bad(f"{path}:{lineno}: id {label.id!r} is already in newsevents train/dev")
                    continue
                parsed.append((path, lineno, label))

    texts = resolve(root, (label.id for _, _, label in parsed))
    seen: dict[str, tuple[str | None, str | None]] = {}
    rows: list[LabeledRow] = []
    for path, lineno, label in parsed:
        doc = texts.get(label.id)
        if doc is None:
            corpus = _split_id(label.id)[0]
            why = "unknown corpus" if corpus not in RESOLVERS else "no such document in the raw corpus"
            bad(f"{path}:{lineno}: id {label.id!r} cannot be resolved ({why})")
            continue
        if label.id in seen:
            # The same document labeled twice (in one file or both): the first label is kept, and how often a
            # second annotator disagreed is worth knowing.
            report.repeated_ids += 1
            report.repeated_ids_disagreeing += int(seen[label.id] != (label.topic, label.incident))
            continue
        seen[label.id] = (label.topic, label.incident)
        if heldout and near_key(*doc) in heldout:
            report.near_duplicates_of_heldout += 1
            continue
        title, text = doc
        rows.append(LabeledRow(id=label.id, title=title, text=text or title, topic=label.topic,
                               incident=label.incident))
        report.kept += 1
        report.unsure += int(not label.sure)
        counts = report.by_file.setdefault(path.name, {"rows": 0, "topic": {}, "incident": {}})
        counts["rows"] += 1
        for head in HEADS:
            value = getattr(label, head)
            if value is not None:
                counts[head][value] = counts[head].get(value, 0) + 1
        source = _split_id(label.id)[0]
        report.by_source[source] = report.by_source.get(source, 0) + 1
    for counts in report.by_file.values():
        for head in HEADS:
            counts[head] = dict(Counter(counts[head]).most_common())
    return rows, report
