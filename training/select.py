"""Model selection (``newsstream train --select``): cross-validated macro-F1 on train, and docs/second.

The rule: among recipes that classify at least ``MIN_DOCS_PER_SECOND`` full articles per CPU-second,
take the best mean of topic and (none-shifted) incident CV macro-F1. Dev is never looked at here.
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import replace
from pathlib import Path
from typing import Any

import numpy as np

from streamer.artifact import ModelBundle
from training.data import LabeledRow, guardian_docs
from training.train import (
    DEFAULT_RECIPE,
    Recipe,
    cross_validate,
    fit_bundle,
    measure_throughput,
)

MIN_DOCS_PER_SECOND = 2000

#: What the issue asks to compare: analyzer, classifier, class weighting, how much text is read;
#: one factor at a time from the logistic-regression baseline, to keep it affordable on two cores.
BASELINE = replace(DEFAULT_RECIPE, classifier="logreg", C=10.0)


def candidates(base: Recipe = BASELINE) -> list[Recipe]:
    return [
        base,
        replace(base, max_chars=0),
        replace(base, max_chars=3000),
        replace(base, analyzer="char_wb", ngram_max=4),
        replace(base, classifier="svm", C=0.3),
        replace(base, classifier="cnb", C=3.0),
        replace(base, class_weight=None),
    ]


def _bench_docs(root: Path, limit: int = 1000) -> list[tuple[str, str]]:
    return guardian_docs(root, limit)


def run_selection(
    rows: Sequence[LabeledRow], eval_mask: np.ndarray, root: Path, seed: int, folds: int, quiet: bool = False
) -> tuple[Recipe, list[dict[str, Any]]]:
    from tqdm import tqdm

    bench = _bench_docs(root) or [(r.title, r.text) for r in rows[:1000]]
    table: list[dict[str, Any]] = []
    results = []
    for recipe in tqdm(candidates(), desc="model selection", disable=quiet):
        cv = cross_validate(recipe, rows, seed, folds, eval_mask)
        payload = fit_bundle(recipe, rows, seed, cv.none_shift)
        bundle = ModelBundle({"format": 1, **payload}, {})
        cv.docs_per_second = measure_throughput(bundle.predict_proba, bench, batch_size=256, repeats=3)
        results.append(cv)
        table.append(cv.row())
    fast = [r for r in results if r.docs_per_second >= MIN_DOCS_PER_SECOND] or results

    def score(r: Any) -> float:
        return (r.macro_f1["topic"] + r.macro_f1_shifted) / 2

    best = max(fast, key=score)
    for row, result in zip(table, results, strict=True):
        row["chosen"] = result is best
    return best.recipe, table
