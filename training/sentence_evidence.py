"""Experiment (issue 12, item 4): does the best sentence's incident evidence, pooled with the document's, pay?

    .venv/bin/python -m training.sentence_evidence [--out models/sentence-evidence.json]

In a long article the incident often sits in one sentence of many, where the document's bag of n-grams dilutes it.
Here the incident head trained on documents also scores every sentence of the text the document model reads (its
first ``max_chars``); the sentence least likely to be ``none`` is the evidence, and the pooled scores are
``alpha · document + (1 - alpha) · best sentence``. ``alpha = 1`` is the shipped model.

Scored three ways, the none shift re-tuned for each alpha on the same out-of-fold scores (as training does):
3-fold grouped CV on newsevents train (+ label-only annotations and mapped rows in the training folds only),
dev from a dev-blind model, and the thin-class set. It also sweeps the incident head's C on the CV folds,
since the issue's incident targets were missed with the topic head's C. Reporting only: nothing here is shipped
unless the numbers pay and the speed holds (``speed`` in the output: articles per CPU-second, same run).
"""

from __future__ import annotations

import argparse
import json
import re
import time
from pathlib import Path
from typing import Any

import numpy as np
from sklearn.metrics import f1_score
from sklearn.model_selection import StratifiedGroupKFold
from threadpoolctl import threadpool_limits

from streamer.taxonomy import HEADS, NO_INCIDENT
from training import annotations as ann
from training import corpora
from training.build import load_selection
from training.compare import load_rows
from training.data import (
    REPO_ROOT,
    LabeledRow,
    LoadReport,
    clean,
    data_dir,
    guardian_docs,
    read_reserved,
    read_rows,
    text_key,
)
from training.train import build_classifier, build_features, compact_head, docs_of, shifted_predictions, tune_none_shift

ALPHAS = (1.0, 0.85, 0.7, 0.5)
INCIDENT_CS = (0.1, 0.3, 1.0)
_SENTENCE = re.compile(r"(?<=[.!?])\s+|\n+")
MIN_SENTENCE_CHARS = 30
MAX_SENTENCES = 40


def sentences(text: str, max_chars: int) -> list[str]:
    """The sentences of the text the document model reads; fragments under 30 characters are not evidence."""
    body = text if max_chars <= 0 else text[:max_chars]
    return [s for s in _SENTENCE.split(body) if len(s) >= MIN_SENTENCE_CHARS][:MAX_SENTENCES]


def sentence_evidence(features: Any, head: Any, docs: list[tuple[str, str]], max_chars: int) -> np.ndarray:
    """Per document, the incident probabilities of its sentence least likely to be ``none``.

    A document of fewer than two sentences has no evidence beyond itself: its row is NaN (pooling keeps the
    document's scores)."""
    classes = [str(c) for c in head.classes_]
    none = classes.index(NO_INCIDENT)
    flat: list[tuple[str, str]] = []
    owner: list[int] = []
    for i, (_title, text) in enumerate(docs):
        parts = sentences(text, max_chars)
        if len(parts) >= 2:
            flat.extend(("", s) for s in parts)
            owner.extend([i] * len(parts))
    out = np.full((len(docs), len(classes)), np.nan)
    if not flat:
        return out
    proba = head.predict_proba(features.transform(flat))
    owners = np.asarray(owner)
    # Sentences are grouped by owner in order: the best per group is the minimum of p(none).
    order = np.lexsort((proba[:, none], owners))
    first = np.ones(len(order), dtype=bool)
    first[1:] = owners[order][1:] != owners[order][:-1]
    best = order[first]
    out[owners[best]] = proba[best]
    return out


def pool(doc: np.ndarray, sent: np.ndarray, alpha: float) -> np.ndarray:
    pooled = alpha * doc + (1 - alpha) * np.where(np.isnan(sent), doc, sent)
    return pooled


def fit_incident(recipe: Any, x: Any, rows: list[LabeledRow], c: float, seed: int) -> Any:
    idx = [i for i, r in enumerate(rows) if r.incident is not None]
    y = [str(rows[i].incident) for i in idx]
    from dataclasses import replace

    clf = build_classifier(replace(recipe, C=c), seed)
    x = x.tocsr()
    with threadpool_limits(limits=1):
        clf.fit(x[idx], y)
    return compact_head(clf, x[idx[:256]])


def score(proba: np.ndarray, classes: list[str], y: list[str], shift: float) -> float:
    return float(f1_score(y, shifted_predictions(proba, classes, shift), average="macro", zero_division=0))


def incident_vs_none(proba: np.ndarray, classes: list[str], y: list[str], shift: float) -> float:
    pred = shifted_predictions(proba, classes, shift)
    return float(f1_score([t != NO_INCIDENT for t in y], [p != NO_INCIDENT for p in pred], zero_division=0))


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0] if __doc__ else None)
    parser.add_argument("--data-dir", type=Path, default=None)
    parser.add_argument("--seed", type=int, default=0)
    parser.add_argument("--folds", type=int, default=3)
    parser.add_argument("--out", type=Path, default=REPO_ROOT / "models" / "sentence-evidence.json")
    args = parser.parse_args()

    root = data_dir(args.data_dir)
    reserved = read_reserved(root)
    recipe, _, mapped_names = load_selection()
    dev = read_rows(root / "newsevents" / "dev.jsonl")
    eval_ids = ann.eval_ids()
    dev_keys = {text_key(r.title, r.text) for r in dev}
    report = LoadReport()
    train_rows = read_rows(root / "newsevents" / "train.jsonl")
    annotated = clean([r for r in train_rows if r.id not in eval_ids], reserved, report, exclude_keys=dev_keys)
    newsevents_ids = {r.id for r in train_rows} | {r.id for r in dev} | eval_ids
    label_only, _ = ann.load_annotations(ann.default_files(), root, reserved, newsevents_ids,
                                         heldout=ann.heldout_keys(root, reserved | eval_ids, dev))
    label_only = clean(label_only, reserved, report,
                       exclude_keys=dev_keys | {text_key(r.title, r.text) for r in annotated})
    exclude = reserved | eval_ids | {r.id for r in dev} | {r.id for r in annotated} | {r.id for r in label_only}
    taken = dev_keys | {text_key(r.title, r.text) for r in annotated + label_only}
    mapped: list[LabeledRow] = []
    for name in mapped_names:
        got, _ = corpora.load_mapped(name, root, exclude)
        mapped.extend(clean(got, reserved, report, exclude_keys=taken))
    rows = [*annotated, *label_only, *mapped]
    n_scored = len(annotated)
    thin = load_rows([ann.ANNOTATION_DIR / "eval" / "thin_eval.jsonl"], root)
    print(f"rows: {len(rows)} ({n_scored} scored in CV); dev {len(dev)}; thin {len(thin)}", flush=True)

    labels = list(HEADS["incident"])
    docs = docs_of(rows)
    oof = {(c, kind): np.full((len(rows), len(labels)), np.nan) for c in INCIDENT_CS for kind in ("doc", "sent")}
    strat = [r.incident or r.topic or "" for r in rows]
    groups = [ann.near_key(r.title or "", r.text) or f"row-{i}" for i, r in enumerate(rows)]
    splitter = StratifiedGroupKFold(n_splits=args.folds, shuffle=True, random_state=args.seed)
    for fold, (tr, te) in enumerate(splitter.split(np.zeros(len(rows)), strat, groups)):
        started = time.perf_counter()
        features = build_features(recipe)
        x_train = features.fit_transform([docs[i] for i in tr])
        te_scored = np.asarray([i for i in te if i < n_scored])
        test_docs = [docs[i] for i in te_scored]
        x_test = features.transform(test_docs)
        for c in INCIDENT_CS:
            head = fit_incident(recipe, x_train, [rows[i] for i in tr], c, args.seed)
            cols = [labels.index(str(k)) for k in head.classes_]
            full = np.zeros((len(te_scored), len(labels)))
            full[:, cols] = head.predict_proba(x_test)
            oof[(c, "doc")][te_scored] = full
            sent = np.full((len(te_scored), len(labels)), np.nan)
            sent[:, cols] = sentence_evidence(features, head, test_docs, recipe.max_chars)
            oof[(c, "sent")][te_scored] = sent
        print(f"fold {fold}: {time.perf_counter() - started:.0f} s", flush=True)

    keep = [i for i in range(n_scored) if rows[i].incident is not None]
    y = [str(rows[i].incident) for i in keep]
    has_sentences = ~np.isnan(oof[(INCIDENT_CS[0], "sent")][keep][:, 0])
    cv: list[dict[str, Any]] = []
    for c in INCIDENT_CS:
        for alpha in ALPHAS:
            proba = pool(oof[(c, "doc")][keep], oof[(c, "sent")][keep], alpha)
            shift, f1 = tune_none_shift(proba, labels, y)
            long_idx = np.flatnonzero(has_sentences)
            cv.append({"C": c, "alpha": alpha, "none_shift": shift, "cv_macro_f1_incident": round(f1, 4),
                       "cv_incident_vs_none_f1": round(incident_vs_none(proba, labels, y, shift), 4),
                       "cv_macro_f1_incident_multi_sentence_docs": round(
                           score(proba[long_idx], labels, [y[i] for i in long_idx], shift), 4)})
            print(json.dumps(cv[-1]), flush=True)
    best = max(cv, key=lambda r: r["cv_macro_f1_incident"])
    baseline = next(r for r in cv if r["C"] == recipe.C and r["alpha"] == 1.0)

    # Dev-blind model with the CV-chosen C; dev and thin scored at alpha = 1 and at the CV-chosen alpha.
    features = build_features(recipe)
    x = features.fit_transform(docs)
    held: dict[str, Any] = {}
    for name, c in (("shipped_C", recipe.C), ("cv_best_C", best["C"])):
        head = fit_incident(recipe, x, rows, c, args.seed)
        cols = [labels.index(str(k)) for k in head.classes_]
        for set_name, eval_rows in (("dev", dev), ("thin", thin)):
            eval_rows = [r for r in eval_rows if r.incident is not None]
            eval_docs = docs_of(eval_rows)
            d = np.zeros((len(eval_rows), len(labels)))
            d[:, cols] = head.predict_proba(features.transform(eval_docs))
            s = np.full_like(d, np.nan)
            s[:, cols] = sentence_evidence(features, head, eval_docs, recipe.max_chars)
            ye = [str(r.incident) for r in eval_rows]
            for alpha in sorted({1.0, best["alpha"]}, reverse=True):
                shift = next(r["none_shift"] for r in cv if r["C"] == c and r["alpha"] == alpha)
                proba = pool(d, s, alpha)
                held[f"{set_name} C={c:g} alpha={alpha:g}"] = {
                    "macro_f1_incident": round(score(proba, labels, ye, shift), 4),
                    "incident_vs_none_f1": round(incident_vs_none(proba, labels, ye, shift), 4),
                }
                print(f"{set_name} C={c:g} alpha={alpha:g}: {held[f'{set_name} C={c:g} alpha={alpha:g}']}", flush=True)
        if name == "shipped_C":
            speed_head = head
    # Speed, same run, one thread: the document path alone vs document + sentence evidence on Guardian articles.
    bench = guardian_docs(root, 1000)
    rates = {}
    with threadpool_limits(limits=1):
        for kind in ("document", "document+sentences"):
            runs = []
            for _ in range(3):
                started = time.process_time()
                for start in range(0, len(bench), 256):
                    batch = bench[start : start + 256]
                    speed_head.predict_proba(features.transform(batch))
                    if kind != "document":
                        sentence_evidence(features, speed_head, batch, recipe.max_chars)
                runs.append(len(bench) / (time.process_time() - started))
            rates[kind] = round(float(np.median(runs)))
    result = {"recipe": recipe.label(), "rows": len(rows), "scored": len(keep),
              "multi_sentence_share": round(float(has_sentences.mean()), 3), "cv": cv,
              "cv_best": best, "cv_shipped": baseline, "held_out": held,
              "incident_head_docs_per_cpu_second": rates}
    args.out.write_text(json.dumps(result, indent=2) + "\n", encoding="utf-8")
    print(json.dumps({"best": best, "shipped": baseline, "speed": rates}, indent=2))
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
