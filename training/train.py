"""The training pipeline, top to bottom: recipe → shared features → one classifier per head → none-shift.

Reads like scikit-learn's text-classification example on purpose: a :class:`Recipe` names every choice,
:func:`build_features` and :func:`build_classifier` turn it into estimators, :func:`fit_bundle` fits them,
:func:`cross_validate` scores a recipe on train only (model selection never looks at dev).
"""

from __future__ import annotations

import time
from collections.abc import Sequence
from dataclasses import asdict, dataclass, field, replace
from typing import Any

import numpy as np
from sklearn.base import BaseEstimator, clone
from sklearn.calibration import CalibratedClassifierCV
from sklearn.linear_model import LogisticRegression
from sklearn.metrics import f1_score
from sklearn.model_selection import StratifiedGroupKFold
from sklearn.naive_bayes import ComplementNB
from sklearn.pipeline import Pipeline
from sklearn.svm import LinearSVC
from threadpoolctl import threadpool_limits

from streamer.features import (
    ArticleText,
    CalibratedLinearHead,
    Doc,
    FastHashedTfidf,
    HashedTfidf,
    softmax_rows,
)
from streamer.taxonomy import DEFAULT, NO_INCIDENT, Taxonomy
from training.data import LabeledRow


@dataclass(frozen=True)
class Recipe:
    """Every modelling choice in one place; the card stores it so a bundle can be rebuilt."""

    analyzer: str = "word"  # "word" or "char_wb"; with featurizer="fast" also "word+char_wb"
    ngram_max: int = 2
    max_chars: int = 2000  # how much body text is read (0 = all)
    cue_sentences: int = 0  # incident sentences pulled forward from long articles
    title_repeat: int = 2
    min_df: int = 2
    max_features: int = 120_000
    classifier: str = "svm"  # "logreg", "svm" (calibrated LinearSVC) or "cnb"; svm won the selection
    C: float = 0.3
    class_weight: str | None = "balanced"
    tune_none_shift: bool = True
    # "hashed": HashedTfidf (1.x bundles; a Python analyzer per document). "fast": FastHashedTfidf, vectorized
    # word and char_wb n-grams, ~9x faster on words alone, which is what makes character n-grams affordable.
    featurizer: str = "hashed"
    char_min: int = 2  # char_wb n-gram lengths (featurizer="fast" with a char_wb analyzer)
    char_max: int = 5
    char_max_features: int = 100_000
    char_chars: int = 0  # char n-grams from the composed text's first char_chars characters (0 = all of it)

    def label(self) -> str:
        weight = "bal" if self.class_weight else "unw"
        chars = "all" if self.max_chars == 0 else str(self.max_chars)
        analyzer = f"{self.analyzer}1-{self.ngram_max}"
        if self.featurizer == "fast":
            parts = [f"word1-{self.ngram_max}"] if self.analyzer != "char_wb" else []
            if self.analyzer != "word":
                span = f"@{self.char_chars}" if self.char_chars else ""
                parts.append(f"char_wb{self.char_min}-{self.char_max}{span}")
            analyzer = "+".join(parts) + " fast"
        return f"{analyzer} {self.classifier} C={self.C:g} {weight} chars={chars} cues={self.cue_sentences}"


DEFAULT_RECIPE = Recipe()


def build_features(recipe: Recipe) -> Pipeline:
    """docs → sparse float32 matrix, shared by both heads so each article is tokenised once."""
    text = ArticleText(
        max_chars=recipe.max_chars, title_repeat=recipe.title_repeat, cue_sentences=recipe.cue_sentences
    )
    vectorizer: BaseEstimator
    if recipe.featurizer == "fast":
        vectorizer = FastHashedTfidf(
            analyzer=recipe.analyzer,
            word_ngram=(1, recipe.ngram_max),
            char_ngram=(recipe.char_min, recipe.char_max),
            lowercase=False,  # ArticleText lower-cases already
            min_df=recipe.min_df,
            word_max_features=recipe.max_features,
            char_max_features=recipe.char_max_features,
            char_max_chars=recipe.char_chars,
        )
    elif recipe.featurizer == "hashed":
        if recipe.analyzer not in ("word", "char_wb"):
            raise ValueError(f"featurizer 'hashed' takes analyzer 'word' or 'char_wb', not {recipe.analyzer!r}")
        vectorizer = HashedTfidf(
            analyzer=recipe.analyzer,
            bigrams=recipe.ngram_max >= 2,
            char_ngram=(3, max(3, recipe.ngram_max)),
            min_df=recipe.min_df,
            max_features=recipe.max_features,
        )
    else:
        raise ValueError(f"unknown featurizer {recipe.featurizer!r} (expected 'hashed' or 'fast')")
    return Pipeline([("text", text), ("tfidf", vectorizer)])


def build_classifier(recipe: Recipe, seed: int) -> BaseEstimator:
    weight = recipe.class_weight
    if recipe.classifier == "logreg":
        return LogisticRegression(C=recipe.C, class_weight=weight, max_iter=2000, random_state=seed)
    if recipe.classifier == "svm":
        # LinearSVC has no probabilities; sigmoid calibration on inner folds gives the scores the worker needs.
        svm = LinearSVC(C=recipe.C, class_weight=weight, random_state=seed)
        return CalibratedClassifierCV(svm, method="sigmoid", cv=3, ensemble=False)
    if recipe.classifier == "cnb":
        return ComplementNB(alpha=1.0 / max(recipe.C, 1e-6))
    raise ValueError(f"unknown classifier {recipe.classifier!r}")


def docs_of(rows: Sequence[LabeledRow]) -> list[Doc]:
    return [(row.title, row.text) for row in rows]


def _head_rows(rows: Sequence[LabeledRow], head: str) -> tuple[np.ndarray, list[str]]:
    idx = [i for i, row in enumerate(rows) if getattr(row, head) is not None]
    return np.asarray(idx, dtype=np.int64), [str(getattr(rows[i], head)) for i in idx]


def fit_heads(recipe: Recipe, x: Any, rows: Sequence[LabeledRow], seed: int,
              taxonomy: Taxonomy = DEFAULT) -> dict[str, Any]:
    heads: dict[str, Any] = {}
    if hasattr(x, "tocsr"):
        x = x.tocsr()  # FastHashedTfidf gives CSC (fast heads); row selection and liblinear want rows
    # One BLAS/OpenMP thread: a reduction split over threads sums in another order, so the weights (and the model
    # file's bytes) would follow the machine's core count. liblinear is single-threaded anyway, so this costs
    # nothing measurable; it guards the logreg recipe and the calibration's dense steps.
    with threadpool_limits(limits=1):
        for head in taxonomy.labels:
            idx, y = _head_rows(rows, head)
            clf = build_classifier(recipe, seed)
            clf.fit(x[idx], y)
            _shrink(clf)
            heads[head] = compact_head(clf, x[idx[:256]]) if recipe.featurizer == "fast" else clf
    return heads


def compact_head(clf: Any, sample: Any) -> Any:
    """A calibrated LinearSVC as :class:`CalibratedLinearHead` (3-4× faster on FastHashedTfidf's column-major
    output), after checking it gives the same probabilities on ``sample``; other classifiers stay as they are."""
    if not isinstance(clf, CalibratedClassifierCV) or clf.ensemble or clf.method != "sigmoid":
        return clf
    head = CalibratedLinearHead.from_calibrated(clf)
    expected = clf.predict_proba(sample)
    got = head.predict_proba(sample.tocsc())
    if not np.allclose(got, expected, rtol=0, atol=1e-6):
        raise RuntimeError(f"CalibratedLinearHead differs from the classifier by {np.abs(got - expected).max():.3g}")
    return head


def _shrink(clf: Any) -> None:
    """float32 weights: half the bundle size, and the features are float32 anyway."""
    for calibrated in getattr(clf, "calibrated_classifiers_", ()):
        _shrink(calibrated.estimator)
    for attr in ("coef_", "intercept_", "feature_log_prob_"):
        value = getattr(clf, attr, None)
        if isinstance(value, np.ndarray) and value.dtype == np.float64:
            setattr(clf, attr, value.astype(np.float32))


def none_shift_vector(classes: Sequence[str], shift: float, none_label: str = NO_INCIDENT) -> np.ndarray:
    vec = np.zeros(len(classes), dtype=np.float64)
    vec[list(classes).index(none_label)] = shift
    return vec


def shifted_predictions(proba: np.ndarray, classes: Sequence[str], shift: float,
                        none_label: str = NO_INCIDENT) -> np.ndarray:
    adjusted = softmax_rows(np.log(np.clip(proba, 1e-12, None)) + none_shift_vector(classes, shift, none_label))
    return np.asarray(classes)[adjusted.argmax(axis=1)]


SHIFT_GRID = tuple(np.round(np.arange(-2.0, 2.01, 0.25), 2))


def tune_none_shift(proba: np.ndarray, classes: Sequence[str], y_true: Sequence[str],
                    none_label: str = NO_INCIDENT) -> tuple[float, float]:
    """The log-odds shift on ``none`` that maximises macro-F1 on out-of-fold scores. Returns (shift, F1)."""
    best = (0.0, -1.0)
    for shift in SHIFT_GRID:
        pred = shifted_predictions(proba, classes, float(shift), none_label)
        score = f1_score(y_true, pred, average="macro", zero_division=0)
        # Ties go to the smaller |shift|: no evidence, no adjustment.
        if score > best[1] + 1e-9 or (abs(score - best[1]) <= 1e-9 and abs(shift) < abs(best[0])):
            best = (float(shift), float(score))
    return best


@dataclass
class CVResult:
    recipe: Recipe
    macro_f1: dict[str, float]
    none_shift: float
    macro_f1_shifted: float
    fit_seconds: float
    docs_per_second: float = 0.0
    shift_head: str | None = "incident"  # the head with a none label, whose threshold is tuned
    #: per head, the out-of-fold top-label confidence: a 10-bin histogram (shares) and quantiles
    confidence: dict[str, Any] = field(default_factory=dict)
    #: per head, the share of each label among the out-of-fold predictions (what the model says on training-like data)
    predicted_mix: dict[str, dict[str, float]] = field(default_factory=dict)

    def row(self) -> dict[str, Any]:
        out: dict[str, Any] = {"recipe": self.recipe.label(), "params": asdict(self.recipe)}
        out.update({f"cv_macro_f1_{head}": round(score, 4) for head, score in self.macro_f1.items()})
        if self.shift_head is not None:
            out["none_shift"] = self.none_shift
            out[f"cv_macro_f1_{self.shift_head}_shifted"] = round(self.macro_f1_shifted, 4)
        out.update({"fit_seconds": round(self.fit_seconds, 1), "docs_per_second": round(self.docs_per_second)})
        if self.confidence:
            out["confidence"] = self.confidence
        if self.predicted_mix:
            out["predicted_mix"] = self.predicted_mix
        return out


def cross_validate(
    recipe: Recipe, rows: Sequence[LabeledRow], seed: int, folds: int = 3, eval_mask: np.ndarray | None = None,
    taxonomy: Taxonomy = DEFAULT,
) -> CVResult:
    """Stratified k-fold on train (by incident, the thinner head). Features are refit inside each fold.

    ``eval_mask`` limits scoring to some rows (the annotated ones), so mapped rows can be added to training
    folds without grading the model on the mapping's own labels.
    """
    started = time.perf_counter()
    heads = taxonomy.labels
    # Stratified on the first labeled head (the incident head first for the news taxonomy: it is the thinner).
    order = ["incident", "topic"] if taxonomy == DEFAULT else list(heads)
    strat = [next((str(getattr(row, h)) for h in order if getattr(row, h) is not None), "") for row in rows]
    # Near-duplicates (same first 50 letters and digits: wire copies, AG News repeats) stay in one fold, or CV
    # would grade the model on texts it was trained on.
    from training.annotations import near_key

    groups = [near_key(row.title or "", row.text) or f"row-{i}" for i, row in enumerate(rows)]
    splitter = StratifiedGroupKFold(n_splits=folds, shuffle=True, random_state=seed)
    oof: dict[str, np.ndarray | None] = dict.fromkeys(heads)
    classes: dict[str, list[str]] = {}
    docs = docs_of(rows)
    for train_idx, test_idx in splitter.split(np.zeros(len(rows)), strat, groups):
        features = build_features(recipe)
        x_train = features.fit_transform([docs[i] for i in train_idx])
        x_test = features.transform([docs[i] for i in test_idx])
        fitted = fit_heads(recipe, x_train, [rows[i] for i in train_idx], seed, taxonomy)
        for head, clf in fitted.items():
            classes[head] = [str(c) for c in clf.classes_]
            proba = clf.predict_proba(x_test)
            if oof[head] is None:
                oof[head] = np.full((len(rows), len(heads[head])), np.nan)
            full = np.zeros((len(test_idx), len(heads[head])))
            for j, label in enumerate(classes[head]):
                full[:, heads[head].index(label)] = proba[:, j]
            oof[head][test_idx] = full  # type: ignore[index]
    scores: dict[str, float] = {}
    shift, shifted = 0.0, 0.0
    confidence: dict[str, Any] = {}
    predicted_mix: dict[str, dict[str, float]] = {}
    shift_head = next((h.name for h in taxonomy.heads if h.none_label is not None), None)
    for head in heads:
        labels = list(heads[head])
        keep = [
            i
            for i, row in enumerate(rows)
            if getattr(row, head) is not None and (eval_mask is None or bool(eval_mask[i]))
        ]
        proba = oof[head][keep]  # type: ignore[index]
        y = [str(getattr(rows[i], head)) for i in keep]
        pred = np.asarray(labels)[proba.argmax(axis=1)]
        scores[head] = float(f1_score(y, pred, average="macro", zero_division=0))
        top = proba.max(axis=1)
        hist, edges = np.histogram(top, bins=10, range=(0.0, 1.0))
        confidence[head] = {"bins": [round(float(e), 1) for e in edges],
                            "share": [round(float(c) / max(1, len(top)), 4) for c in hist],
                            "quantiles": {q: round(float(np.quantile(top, float(q))), 4) if len(top) else None
                                          for q in ("0.1", "0.25", "0.5", "0.75", "0.9")}}
        predicted_mix[head] = {label: round(float(np.mean(pred == label)), 4) for label in labels}
        if head == shift_head:
            none_label = str(taxonomy.head(head).none_label)
            if recipe.tune_none_shift:
                shift, shifted = tune_none_shift(proba, labels, y, none_label)
            else:
                shifted = scores[head]
    return CVResult(recipe, scores, shift, shifted, time.perf_counter() - started, shift_head=shift_head,
                    confidence=confidence, predicted_mix=predicted_mix)


def measure_throughput(predict: Any, docs: Sequence[Doc], batch_size: int = 256, repeats: int = 3) -> float:
    """Documents per CPU-second through ``predict(batch)`` — median of ``repeats`` passes.

    CPU time, not wall time: training shares two cores with other work, and a wall-clock rate would rank
    recipes by how busy the machine happened to be. Prediction is single-threaded, so this is one core's rate.
    """
    rates = []
    for _ in range(repeats):
        started = time.process_time()
        for start in range(0, len(docs), batch_size):
            predict(docs[start : start + batch_size])
        rates.append(len(docs) / max(time.process_time() - started, 1e-9))
    return float(np.median(rates))


def payload_for(recipe: Recipe, features: Pipeline, heads: dict[str, Any], none_shift: float,
                taxonomy: Taxonomy = DEFAULT) -> dict[str, Any]:
    shifts: dict[str, Any] = dict.fromkeys(heads)
    for head in taxonomy.heads:
        if head.none_label is not None and none_shift and head.none_label in heads[head.name].classes_:
            classes = [str(c) for c in heads[head.name].classes_]
            shifts[head.name] = none_shift_vector(classes, none_shift, head.none_label)
    if taxonomy == DEFAULT:  # the key order 1.x/2.0 bundles were written with: same bytes for the same recipe
        shifts = {"incident": shifts["incident"], "topic": shifts["topic"]}
    return {"features": features, "heads": heads, "log_prior_shift": shifts}


def fit_bundle(recipe: Recipe, rows: Sequence[LabeledRow], seed: int, none_shift: float,
               taxonomy: Taxonomy = DEFAULT) -> dict[str, Any]:
    features = clone(build_features(recipe))
    x = features.fit_transform(docs_of(rows))
    heads = fit_heads(recipe, x, rows, seed, taxonomy)
    return payload_for(recipe, features, heads, none_shift, taxonomy)


def with_overrides(recipe: Recipe, **changes: Any) -> Recipe:
    return replace(recipe, **changes)
