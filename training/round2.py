"""Annotation round 2: pick documents from the unlabeled pools where the current model is least sure.

    .venv/bin/python -m training.round2 --out /tmp/round2 [--per-class 230] [--extra 600] [--batch 150]

Pools (ids in the label-only scheme of :mod:`training.annotations`): Guardian, HuffPost, the AG News train sample,
Wikipedia Current Events sentences, BBC and Reuters-21578. Every id that is reserved, already in newsevents, already
annotated, or a near-duplicate of a reserved or dev document is left out. The shipped model scores the rest; for
each weak class the documents where that class is among the model's two best labels are taken, least sure first
(smallest margin between the two), then ``--extra`` of the least sure documents overall.

The batches written to ``--out`` hold the text shown to annotators (title and the first 1,500 characters, as in
round 1): scratch files outside the repository, since the corpora's licences keep their text out of it. What comes
back is label-only (``{"id", "topic", "incident", "sure"}``) and goes to ``training/annotations/``.
"""

from __future__ import annotations

import argparse
import csv
import json
import random
import re
from collections.abc import Iterator
from pathlib import Path

import numpy as np

from streamer.artifact import load_bundle
from training.annotations import ANNOTATION_DIR, heldout_keys, near_key, resolve
from training.data import REPO_ROOT, data_dir, read_reserved, read_rows

WEAK_TOPICS = ("weather", "lifestyle_leisure", "society", "human_interest", "education", "religion", "labour", "health")
WEAK_INCIDENTS = ("accident", "riot", "armed_assault", "air_drone_strike", "shelling_missile_strike", "protest",
                  "disease_outbreak")
SHOWN_CHARS = 1500


def pool_ids(root: Path) -> Iterator[str]:
    """Every document id of the unlabeled pools."""
    with (root / "huffpost-head10k" / "News_Category_Dataset_v3.head10000.jsonl").open(encoding="utf-8") as fh:
        yield from (f"huffpost:{n}" for n, _ in enumerate(fh))
    with (root / "guardian" / "articles.jsonl").open(encoding="utf-8") as fh:
        yield from (str(json.loads(line)["id"]) for line in fh)
    with (root / "ag-news-train-sample5k" / "train.csv").open(encoding="utf-8", newline="") as fh:
        yield from (f"agnewstrain:{n}" for n, _ in enumerate(csv.reader(fh)))
    for path in sorted((root / "wiki-current-events").glob("events_*.jsonl")):
        with path.open(encoding="utf-8") as fh:
            yield from (f"wikicurrent:{path.stem}:{n}" for n, _ in enumerate(fh))
    for path in sorted((root / "bbc-news" / "bbc").glob("*/*.txt")):
        yield f"bbc:{path.parent.name}/{path.name}"
    for path in sorted((root / "reuters21578").glob("reut2-*.sgm")):
        yield from (f"reuters:{m}" for m in re.findall(r'NEWID="(\d+)"', path.read_bytes().decode("latin-1")))


def candidates(root: Path) -> dict[str, tuple[str, str]]:
    reserved = read_reserved(root)
    train = read_rows(root / "newsevents" / "train.jsonl")
    dev = read_rows(root / "newsevents" / "dev.jsonl")
    taken = set(reserved) | {r.id for r in train} | {r.id for r in dev}
    for path in sorted(ANNOTATION_DIR.rglob("*.jsonl")):
        taken |= {json.loads(line)["id"] for line in path.read_text(encoding="utf-8").splitlines() if line.strip()}
    ids = [i for i in pool_ids(root) if i not in taken]
    docs = resolve(root, ids)
    held = heldout_keys(root, reserved, dev)
    seen: set[str] = set()
    out = {}
    for doc_id in ids:
        if doc_id not in docs:
            continue
        title, text = docs[doc_id]
        key = near_key(title, text)
        if not key or key in held or key in seen or len((title + text).split()) < 8:
            continue
        seen.add(key)
        out[doc_id] = (title, text)
    return out


def pick(docs: dict[str, tuple[str, str]], model_dir: Path, per_class: int, extra: int,
         seed: int) -> list[tuple[str, str]]:
    """(id, why) in the order picked."""
    bundle = load_bundle(model_dir)
    ids = sorted(docs)
    probas = bundle.predict_proba([docs[i] for i in ids])
    chosen: dict[str, str] = {}
    for head, weak in (("topic", WEAK_TOPICS), ("incident", WEAK_INCIDENTS)):
        labels = list(bundle.labels[head])
        proba = probas[head]
        order = np.argsort(-proba, axis=1)
        margin = _margin(proba)
        for label in weak:
            j = labels.index(label)
            top2 = (order[:, 0] == j) | (order[:, 1] == j)
            rows = np.flatnonzero(top2 & (proba[:, j] >= 0.05))
            # least sure first, but never only one source
            _take([ids[r] for r in rows[np.argsort(margin[rows], kind="stable")]], per_class, chosen,
                  f"{head}:{label}")
    rest = [i for i in ids if i not in chosen]
    topic_margin = {i: m for i, m in zip(ids, _margin(probas["topic"]), strict=True)}
    incident_margin = {i: m for i, m in zip(ids, _margin(probas["incident"]), strict=True)}
    rest.sort(key=lambda i: min(topic_margin[i], incident_margin[i]))
    for doc_id in rest[:extra]:
        chosen[doc_id] = "least_sure"
    picked = list(chosen.items())
    random.Random(seed).shuffle(picked)  # batches mix classes and sources, so no annotator sees one kind only
    return picked


#: A second pass for the classes the first left under 150 rows: where the model gives the class the highest
#: probability among documents that mention its vocabulary. Words only pick what annotators read; labels are theirs.
FOCUS_WORDS = {
    "lifestyle_leisure": r"\b(travel|recipe|food|restaurant|fashion|wedding|holiday|hotel|garden|diet|wine|style)",
    "society": r"\b(immigra|racism|poverty|welfare|gender|homeless|famil|minorit|equality|discriminat|refugee)",
    "human_interest": r"\b(zoo|animal|dog|cat|birthday|centenarian|royal|prince|princess|record|bizarre|rescued)",
    "education": r"\b(school|universit|student|teacher|exam|college|pupil|curriculum|tuition|campus)",
    "religion": r"\b(church|mosque|pope|vatican|bishop|religio|temple|muslim|christian|jewish|hindu|pilgrim)",
    "riot": r"\b(riot|rioter|loot|mob|unrest|torch|clash(es|ed) with police|rampag)",
    "air_drone_strike": r"\b(air ?strike|air raid|drone|warplane|jets? (bomb|strike|hit)|gunship|bombing run)",
    "shelling_missile_strike": r"\b(shell(s|ed|ing)|artillery|mortar|rocket|missile|grad|katyusha)",
    "disease_outbreak": r"\b(outbreak|epidemic|cholera|ebola|measles|bird flu|h5n1|sars|dengue|cases of|infect)",
}


def focus(docs: dict[str, tuple[str, str]], model_dir: Path, per_class: int, seed: int,
          wanted: dict[str, int] | None = None) -> list[tuple[str, str]]:
    """(id, class) for the focus classes: vocabulary match, then the model's probability of the class, highest first.

    ``wanted`` (class → how many) replaces ``per_class`` for the classes it names, and drops the round-robin over
    sources: the most probable documents first, wherever they come from (a third pass, for the hardest classes).
    """
    bundle = load_bundle(model_dir)
    chosen: dict[str, str] = {}
    for label, pattern in FOCUS_WORDS.items():
        if wanted is not None and label not in wanted:
            continue
        head = "topic" if label in WEAK_TOPICS else "incident"
        rx = re.compile(pattern, re.I)
        ids = sorted(i for i in docs if i not in chosen and rx.search(" ".join(docs[i])))
        if not ids:
            continue
        proba = bundle.predict_proba([docs[i] for i in ids])[head][:, list(bundle.labels[head]).index(label)]
        _take([ids[r] for r in np.argsort(-proba, kind="stable")], (wanted or {}).get(label, per_class), chosen,
              f"focus:{label}", by_source=wanted is None)
    picked = list(chosen.items())
    random.Random(seed).shuffle(picked)
    return picked


def _take(ordered: list[str], limit: int, chosen: dict[str, str], tag: str, by_source: bool = True) -> None:
    """Add up to ``limit`` ids not chosen yet to ``chosen`` (as ``tag``), in order; ``by_source``: round-robin over
    the corpora (the id prefix), each in that order, so no one source fills a class."""
    queues: dict[str, list[str]] = {}
    for doc_id in ordered:
        queues.setdefault(doc_id.partition(":")[0] if by_source else "all", []).append(doc_id)
    n = 0
    while n < limit and any(queues.values()):
        for q in queues.values():
            while q and q[0] in chosen:
                q.pop(0)
            if q and n < limit:
                chosen[q.pop(0)] = tag
                n += 1


def _margin(proba: np.ndarray) -> np.ndarray:
    top = np.sort(proba, axis=1)
    return top[:, -1] - top[:, -2]


def main() -> int:
    parser = argparse.ArgumentParser(description=(__doc__ or "").splitlines()[0])
    parser.add_argument("--out", type=Path, required=True, help="Scratch folder for the batches (not the repo).")
    parser.add_argument("--model", type=Path, default=REPO_ROOT / "models" / "newsstream-1.1.0")
    parser.add_argument("--data-dir", type=Path, default=None)
    parser.add_argument("--per-class", type=int, default=230)
    parser.add_argument("--extra", type=int, default=600)
    parser.add_argument("--batch", type=int, default=150)
    parser.add_argument("--seed", type=int, default=2)
    parser.add_argument("--focus", action="store_true",
                        help="Second pass: the classes still under 150 rows (FOCUS_WORDS), --per-class each.")
    parser.add_argument("--prefix", default="batch", help="File name prefix of the batches.")
    parser.add_argument("--wanted", default=None,
                        help="With --focus: class=count,… (most probable first, no round-robin over sources).")
    args = parser.parse_args()
    if args.out.resolve().is_relative_to(REPO_ROOT):
        parser.error("--out must be outside the repository: the batches hold corpus text")
    root = data_dir(args.data_dir)
    docs = candidates(root)
    if args.focus:
        wanted = ({k: int(v) for k, v in (item.split("=") for item in args.wanted.split(","))}
                  if args.wanted else None)
        picked = focus(docs, args.model, args.per_class, args.seed, wanted)
    else:
        picked = pick(docs, args.model, args.per_class, args.extra, args.seed)
    args.out.mkdir(parents=True, exist_ok=True)
    for b in range(0, len(picked), args.batch):
        with (args.out / f"{args.prefix}_{b // args.batch:02d}.jsonl").open("w", encoding="utf-8") as fh:
            for doc_id, _why in picked[b:b + args.batch]:
                title, text = docs[doc_id]
                # no hint of why it was picked: annotators label blind to the model
                fh.write(json.dumps({"id": doc_id, "title": title, "text": text[:SHOWN_CHARS]},
                                    ensure_ascii=False) + "\n")
    (args.out / f"{args.prefix}_picked.json").write_text(json.dumps(dict(picked), indent=0) + "\n", encoding="utf-8")
    print(f"{len(docs)} candidates, {len(picked)} picked into {(len(picked) + args.batch - 1) // args.batch} "
          f"batches in {args.out}")
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
