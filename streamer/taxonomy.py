"""Taxonomies: the heads a model predicts and each head's labels. A taxonomy travels with the model (in its card).

The default is ``streamer/taxonomies/newsevents.yaml`` (``newsevents/GUIDELINE.md``: 17 IPTC topics, 14 incident
types). A taxonomy of your own is a YAML file of the same shape; the short form names heads and labels only::

    heads:
      category: [world, sports, business, scitech]

Each head appears in the enriched event under its own name (the best label and score) and under its plural (the
top-k list): ``topic``/``topics``, ``category``/``categories``.

>>> len(TOPICS), len(INCIDENTS)
(17, 14)
>>> HEADS["incident"][-1]
'none'
>>> t = Taxonomy.from_dict({"heads": {"category": ["world", "sports"]}})
>>> t.labels, t.head("category").plural
({'category': ('world', 'sports')}, 'categories')
"""

from __future__ import annotations

import re
from collections.abc import Mapping
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any, Final

DEFAULT_FILE: Final[Path] = Path(__file__).with_name("taxonomies") / "newsevents.yaml"
_NAME = re.compile(r"^[a-z][a-z0-9_]*$")
#: Event fields a head or its plural must not take: the enriched event's own keys.
RESERVED_FIELDS: Final[frozenset[str]] = frozenset(
    {"id", "title", "text", "url", "source", "published_at", "language", "model", "schema_version",
     "processed_at", "origin"}
)


class TaxonomyError(ValueError):
    """A taxonomy file or card entry that cannot be used; the message names the file and the place."""


def plural_of(name: str) -> str:
    """``category`` → ``categories``, ``topic`` → ``topics``, ``class`` → ``classes``."""
    if name.endswith("y") and len(name) > 1 and name[-2] not in "aeiou":
        return name[:-1] + "ies"
    if name.endswith(("s", "x", "z", "ch", "sh")):
        return name + "es"
    return name + "s"


@dataclass(frozen=True)
class Head:
    name: str
    labels: tuple[str, ...]
    plural: str
    none_label: str | None = None  # the "nothing to report" label, if any: its threshold is tuned in training
    description: str = ""
    label_info: Mapping[str, Mapping[str, str]] = field(default_factory=dict, compare=False)

    def as_dict(self) -> dict[str, Any]:
        out: dict[str, Any] = {"plural": self.plural, "labels": list(self.labels)}
        if self.none_label is not None:
            out["none_label"] = self.none_label
        if self.description:
            out["description"] = self.description
        if self.label_info:
            out["label_info"] = {k: dict(v) for k, v in self.label_info.items()}
        return out


@dataclass(frozen=True)
class Taxonomy:
    heads: tuple[Head, ...]
    name: str = "custom"

    @property
    def labels(self) -> dict[str, tuple[str, ...]]:
        return {h.name: h.labels for h in self.heads}

    def head(self, name: str) -> Head:
        for h in self.heads:
            if h.name == name:
                return h
        raise KeyError(name)

    @property
    def plurals(self) -> dict[str, str]:
        return {h.name: h.plural for h in self.heads}

    def as_dict(self) -> dict[str, Any]:
        return {"name": self.name, "heads": {h.name: h.as_dict() for h in self.heads}}

    def differences(self, other: Taxonomy) -> list[str]:
        """What a consumer of the events would notice: heads, their labels, their event field names."""
        problems = []
        mine, theirs = self.labels, other.labels
        for name in sorted(set(mine) | set(theirs)):
            if name not in theirs:
                problems.append(f"head {name!r} removed")
            elif name not in mine:
                problems.append(f"head {name!r} added")
            else:
                gone, new = sorted(set(mine[name]) - set(theirs[name])), sorted(set(theirs[name]) - set(mine[name]))
                if gone:
                    problems.append(f"{name}: labels removed {gone}")
                if new:
                    problems.append(f"{name}: labels added {new}")
                if self.head(name).plural != other.head(name).plural:
                    problems.append(f"{name}: list field {self.head(name).plural!r} → {other.head(name).plural!r}")
        return problems

    def check_label(self, head: str, label: str) -> str:
        labels = self.labels
        if head not in labels:
            raise ValueError(f"unknown head {head!r}; expected one of {sorted(labels)}")
        if label not in labels[head]:
            raise ValueError(f"label {label!r} is not in the {head} taxonomy")
        return label

    @classmethod
    def from_dict(cls, data: Any, source: str = "taxonomy") -> Taxonomy:
        """Validate the parsed YAML (or a card's ``taxonomy``); every error names ``source`` and the place."""
        if not isinstance(data, Mapping) or not isinstance(data.get("heads"), Mapping) or not data["heads"]:
            raise TaxonomyError(f"{source}: expected a mapping with a non-empty 'heads' mapping")
        unknown = sorted(set(data) - {"name", "heads", "description"})
        if unknown:
            raise TaxonomyError(f"{source}: unknown key(s) {unknown}; expected name, heads, description")
        heads = []
        fields: dict[str, str] = {}
        for name, spec in data["heads"].items():
            heads.append(_head(str(name) if isinstance(name, str) else name, spec, source))
            for fieldname in (heads[-1].name, heads[-1].plural):
                where = f"{source}: heads.{heads[-1].name}"
                if fieldname in RESERVED_FIELDS:
                    raise TaxonomyError(f"{where}: {fieldname!r} is a field of every enriched event; rename it")
                if fieldname in fields:
                    other = fields[fieldname]
                    raise TaxonomyError(f"{where}: event field {fieldname!r} is also used by head {other!r}")
                fields[fieldname] = heads[-1].name
        return cls(tuple(heads), str(data.get("name") or "custom"))

    @classmethod
    def load(cls, path: Path | str) -> Taxonomy:
        """Read a YAML taxonomy file (a JSON file is YAML too)."""
        import yaml

        path = Path(path)
        try:
            data = yaml.safe_load(path.read_text(encoding="utf-8"))
        except FileNotFoundError as exc:
            raise TaxonomyError(f"{path}: taxonomy file not found") from exc
        except (OSError, UnicodeDecodeError, yaml.YAMLError) as exc:
            raise TaxonomyError(f"{path}: cannot read the taxonomy: {exc}") from exc
        return cls.from_dict(data, str(path))

    @classmethod
    def of_card(cls, card: Mapping[str, Any]) -> Taxonomy:
        """The taxonomy a bundle declares; cards written before taxonomies travelled (≤ 2.0.0) mean the default."""
        data = card.get("taxonomy")
        return DEFAULT if data is None else cls.from_dict(data, "card taxonomy")


def _label_name(value: Any, where: str) -> str:
    if isinstance(value, bool) or value is None:
        raise TaxonomyError(f"{where}: label {value!r} is not a string (YAML reads yes/no/on/off/null unquoted as "
                            "booleans or null: quote it)")
    if not isinstance(value, str | int) or not str(value).strip():
        raise TaxonomyError(f"{where}: label {value!r} must be a non-empty string")
    return str(value)


def _head(name: Any, spec: Any, source: str) -> Head:
    where = f"{source}: heads.{name}"
    if not isinstance(name, str) or not _NAME.match(name):
        raise TaxonomyError(f"{where}: a head name is lower-case letters, digits and _ (it becomes an event field)")
    if isinstance(spec, list | tuple):
        spec = {"labels": spec}
    if not isinstance(spec, Mapping):
        raise TaxonomyError(f"{where}: expected a list of labels or a mapping with 'labels'")
    unknown = sorted(set(spec) - {"labels", "plural", "none_label", "description", "label_info"})
    if unknown:
        raise TaxonomyError(f"{where}: unknown key(s) {unknown}; expected labels, plural, none_label, description")
    raw = spec.get("labels")
    info: dict[str, dict[str, str]] = {}
    if isinstance(raw, Mapping):
        labels = []
        for key, value in raw.items():
            label = _label_name(key, f"{where}.labels")
            labels.append(label)
            if isinstance(value, str):
                info[label] = {"description": value}
            elif isinstance(value, Mapping):
                info[label] = {str(k): str(v) for k, v in value.items()}
            elif value is not None:
                raise TaxonomyError(f"{where}.labels.{label}: expected a description or a mapping")
    elif isinstance(raw, list | tuple):
        labels = [_label_name(v, f"{where}.labels") for v in raw]
    else:
        raise TaxonomyError(f"{where}: 'labels' must be a list or a mapping of label → description")
    if len(labels) < 2:
        raise TaxonomyError(f"{where}: a head needs at least two labels, got {labels}")
    repeated = sorted({label for label in labels if labels.count(label) > 1})
    if repeated:
        raise TaxonomyError(f"{where}: labels listed twice: {repeated}")
    info.update({k: dict(v) for k, v in (spec.get("label_info") or {}).items()})
    plural = str(spec.get("plural") or plural_of(name))
    if not _NAME.match(plural) or plural == name:
        raise TaxonomyError(f"{where}: plural {plural!r} must be a field name different from the head's")
    none_label = spec.get("none_label")
    if none_label is not None and none_label not in labels:
        raise TaxonomyError(f"{where}: none_label {none_label!r} is not one of its labels")
    return Head(name, tuple(labels), plural, none_label, str(spec.get("description") or ""), info)


DEFAULT: Final[Taxonomy] = Taxonomy.load(DEFAULT_FILE)

#: Head name → its label set, for the default taxonomy.
HEADS: Final[dict[str, tuple[str, ...]]] = DEFAULT.labels
TOPICS: Final[tuple[str, ...]] = HEADS["topic"]
INCIDENTS: Final[tuple[str, ...]] = HEADS["incident"]
#: IPTC Media Topics medtop codes of the default topics.
TOPIC_IPTC: Final[dict[str, str]] = {
    label: DEFAULT.head("topic").label_info[label]["code"].removeprefix("medtop:") for label in TOPICS
}
NO_INCIDENT: Final[str] = "none"


def check_label(head: str, label: str) -> str:
    """Return ``label`` if it belongs to ``head``'s label set in the default taxonomy, else raise ``ValueError``.

    >>> check_label("topic", "sport")
    'sport'
    """
    return DEFAULT.check_label(head, label)
