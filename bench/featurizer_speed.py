"""The vectorized featurizer (FastHashedTfidf) against release 1.1.0, before a 2.0 model exists, one core.

    .venv/bin/python bench/featurizer_speed.py [--docs 2000] [--repeats 5] [--baseline-ref v1.1.0]

1. Fits full default-shaped pipelines on newsevents train (ids in ``newsevents/reserved.txt`` dropped by the
   loader) with ``training.train.fit_bundle``: ArticleText → FastHashedTfidf → one calibrated LinearSVC per head
   (compacted to CalibratedLinearHead), for word 1–2-grams alone and with char_wb 2–5 or 3–5, over the whole
   composed text or its first 1,000 characters (``@1000``) — what ``newsstream train`` builds for such a recipe.
   Everything else is 1.1.0's recipe (2,000 characters, title twice, C, class weights, none shift).
2. Times ``ModelBundle.classify`` on full-length Guardian articles for each of them and for the 1.1.0 bundle
   loaded from git (``bench/classify_throughput.py --baseline-ref``), side by side in one run: each repeat runs
   every model back to back, medians of the repeats, CPU time (the machine is shared).
3. Times the featurizers alone on the same composed texts: 1.1.0's HashedTfidf (word 1–2, a Python analyzer),
   scikit-learn's TfidfVectorizer (word 1–2 and char_wb 2–5) and FastHashedTfidf.

Writes ``bench/results/featurizer_speed.json``. Nothing from the corpora is written, only counts and rates.
"""

from __future__ import annotations

import os

for _var in ("OMP_NUM_THREADS", "OPENBLAS_NUM_THREADS", "MKL_NUM_THREADS"):
    os.environ.setdefault(_var, "1")

import argparse  # noqa: E402
import io  # noqa: E402
import json  # noqa: E402
import platform  # noqa: E402
import statistics  # noqa: E402
import sys  # noqa: E402
import tempfile  # noqa: E402
import time  # noqa: E402
from collections.abc import Callable, Sequence  # noqa: E402
from datetime import UTC, datetime  # noqa: E402
from pathlib import Path  # noqa: E402
from typing import Any  # noqa: E402

REPO = Path(__file__).resolve().parent.parent
sys.path.insert(0, str(REPO))

import joblib  # noqa: E402
from sklearn.feature_extraction.text import TfidfVectorizer  # noqa: E402

from bench.classify_throughput import ratios, release_bundle, side_by_side  # noqa: E402
from streamer.artifact import ModelBundle, load_bundle  # noqa: E402
from streamer.features import ArticleText  # noqa: E402
from training.data import data_dir, guardian_docs, load_labeled  # noqa: E402
from training.train import Recipe, docs_of, fit_bundle  # noqa: E402

#: label → recipe changes from 1.1.0's recipe (read from its card): only the featurizer differs.
VARIANTS: dict[str, dict[str, Any]] = {
    "fast word1-2": {"featurizer": "fast", "analyzer": "word"},
    "fast word1-2+char_wb2-5": {"featurizer": "fast", "analyzer": "word+char_wb", "char_min": 2, "char_max": 5},
    "fast word1-2+char_wb3-5": {"featurizer": "fast", "analyzer": "word+char_wb", "char_min": 3, "char_max": 5},
    "fast word1-2+char_wb2-5@1000": {"featurizer": "fast", "analyzer": "word+char_wb", "char_min": 2, "char_max": 5,
                                     "char_chars": 1000},
    "fast word1-2+char_wb3-5@1000": {"featurizer": "fast", "analyzer": "word+char_wb", "char_min": 3, "char_max": 5,
                                     "char_chars": 1000},
}


def cpu_rate(fn: Callable[[Sequence[Any]], Any], items: Sequence[Any], batch_size: int) -> float:
    started = time.process_time()
    for start in range(0, len(items), batch_size):
        fn(items[start : start + batch_size])
    return len(items) / (time.process_time() - started)


def featurizer_rates(
    featurizers: dict[str, Callable[[Sequence[str]], Any]], texts: Sequence[str], batch_size: int, repeats: int
) -> dict[str, dict[str, Any]]:
    """Docs per CPU-second of each featurizer on the same composed texts, repeats interleaved, medians."""
    runs: dict[str, list[float]] = {label: [] for label in featurizers}
    for fn in featurizers.values():
        fn(texts[:64])
    for repeat in range(repeats):
        for label in list(featurizers)[:: 1 if repeat % 2 == 0 else -1]:
            runs[label].append(cpu_rate(featurizers[label], texts, batch_size))
    out = {}
    for label, rates in runs.items():
        x = featurizers[label](texts[:batch_size])
        out[label] = {"docs_per_cpu_second_median": round(statistics.median(rates)), "runs": [round(r) for r in rates],
                      "nnz_per_doc": round(x.nnz / x.shape[0], 1), "columns": int(x.shape[1])}
        print(f"{label:>34s}: {statistics.median(rates):8.0f} docs per CPU-second, "
              f"{x.nnz / x.shape[0]:6.0f} nnz/doc, {x.shape[1]} columns")
    return out


def bundle_bytes(payload: dict[str, Any]) -> int:
    """Size of ``model.joblib`` as ``save_bundle`` writes it (zlib 3)."""
    buffer = io.BytesIO()
    joblib.dump({"format": 1, **payload}, buffer, compress=("zlib", 3))
    return buffer.tell()


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--data-dir", type=Path, default=None)
    parser.add_argument("--baseline-ref", default="v1.1.0")
    parser.add_argument("--docs", type=int, default=2000)
    parser.add_argument("--repeats", type=int, default=5)
    parser.add_argument("--batch-size", type=int, default=256)
    parser.add_argument("--variants", default=",".join(VARIANTS), help="Comma-separated labels of VARIANTS.")
    parser.add_argument("--out", type=Path, default=REPO / "bench" / "results" / "featurizer_speed.json")
    args = parser.parse_args()

    root = data_dir(args.data_dir)
    rows, load_report = load_labeled([root / "newsevents" / "train.jsonl"], root=root, skip_invalid=True)
    docs = guardian_docs(root, args.docs)
    if not docs:
        raise SystemExit("guardian/articles.jsonl not found under the datasets root")

    with tempfile.TemporaryDirectory(prefix="newsstream-baseline-") as tmp:
        baseline_dir = release_bundle(args.baseline_ref, Path(tmp))
        baseline = load_bundle(baseline_dir)
    base_recipe = Recipe(**baseline.card["recipe"])
    none_shift = float(baseline.card.get("none_shift", 0.0))

    fitted: dict[str, ModelBundle] = {}
    fit_info: dict[str, dict[str, Any]] = {}
    for label in args.variants.split(","):
        recipe = Recipe(**{**baseline.card["recipe"], **VARIANTS[label]})
        started = time.process_time()
        payload = fit_bundle(recipe, rows, seed=0, none_shift=none_shift)
        fit_info[label] = {"recipe": recipe.label(), "fit_cpu_seconds": round(time.process_time() - started, 1),
                           "columns": int(payload["features"].steps[-1][1].n_columns),
                           "model_joblib_bytes": bundle_bytes(payload)}
        print(f"fitted {label}: {fit_info[label]}", flush=True)
        fitted[label] = ModelBundle(payload, {"name": "featurizer-bench", "version": label})

    # Featurizers alone, on the texts 1.1.0's ArticleText composes (the same settings for every variant).
    composer = ArticleText(max_chars=base_recipe.max_chars, title_repeat=base_recipe.title_repeat,
                           cue_sentences=base_recipe.cue_sentences)
    texts = composer.transform(docs)
    train_texts = composer.transform(docs_of(rows))
    featurizers: dict[str, Callable[[Sequence[str]], Any]] = {
        "1.1.0 HashedTfidf word1-2": baseline.payload["features"].steps[-1][1].transform,
    }
    for label, ngrams in (("sklearn TfidfVectorizer word1-2", (1, 2)), ("sklearn TfidfVectorizer char_wb2-5", (2, 5))):
        analyzer = "word" if "word" in label else "char_wb"
        vectorizer = TfidfVectorizer(analyzer=analyzer, ngram_range=ngrams, min_df=2, max_df=0.5, sublinear_tf=True,
                                     max_features=base_recipe.max_features, dtype=__import__("numpy").float32)
        featurizers[label] = vectorizer.fit(train_texts).transform
    for label, bundle in fitted.items():
        featurizers[label.replace("fast ", "FastHashedTfidf ")] = bundle.payload["features"].steps[-1][1].transform
    print("featurizers alone (composed texts):")
    alone = featurizer_rates(featurizers, texts, args.batch_size, args.repeats)

    print("classify (ModelBundle.classify, full articles):")
    models = {"1.1.0": baseline.classify, **{label: bundle.classify for label, bundle in fitted.items()}}
    measured = side_by_side(models, docs, [args.batch_size], args.repeats)
    classify = {label: {**measured[label][0], **({"fit": fit_info[label]} if label in fit_info else {})}
                for label in models}
    ratio = {label: ratios(measured[label], measured["1.1.0"])[str(args.batch_size)] for label in fitted}
    for label, r in ratio.items():
        print(f"ratio {label} / 1.1.0: {r['cpu']:.2f} (CPU medians), {r['median_of_repeats_cpu']:.2f} (median repeat)")

    report = {
        "benchmark": "featurizer_speed",
        "measured_at": datetime.now(UTC).isoformat(timespec="seconds"),
        "baseline": {**baseline.describe(), "git_ref": args.baseline_ref, "recipe": baseline.card["recipe"]},
        "train": {"file": "newsevents/train.jsonl", "rows": len(rows), "reserved_removed": load_report.reserved},
        "data": {"file": "guardian/articles.jsonl", "docs": len(docs),
                 "mean_bytes": round(statistics.mean(len(t.encode()) + len(x.encode()) for t, x in docs))},
        "batch_size": args.batch_size,
        "repeats": args.repeats,
        "threads": 1,
        "load_average_1m": round(os.getloadavg()[0], 2),
        "machine": {"python": platform.python_version(), "processor": platform.processor() or platform.machine(),
                    "cpus": os.cpu_count()},
        "featurizer_alone": alone,
        "classify": classify,
        "ratio_vs_1_1_0": ratio,
        "target_ratio": 2.0,
    }
    args.out.parent.mkdir(parents=True, exist_ok=True)
    args.out.write_text(json.dumps(report, indent=2) + "\n", encoding="utf-8")
    print(f"wrote {args.out}")
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
