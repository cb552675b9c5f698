"""FastHashedTfidf against scikit-learn's analyzers, and the properties a served featurizer needs.

The reference is scikit-learn itself: ``CountVectorizer(...).build_analyzer()`` spells every n-gram of a text,
:func:`ngram_id` (plain Python, one n-gram at a time) gives its id, and the vectorized featurizer must produce
exactly that multiset of ids per document, then exactly the TF-IDF a direct computation from those n-grams gives.
Texts: the project's own examples, synthetic edge cases and, when the corpus is on this machine, real Guardian
articles (read, never stored).
"""

from __future__ import annotations

import hashlib
import json
import math
import pickle
import re
import subprocess
import sys
from collections import Counter
from concurrent.futures import ThreadPoolExecutor
from pathlib import Path
from typing import Any

import numpy as np
import pytest
import scipy.sparse as sp
from sklearn.calibration import CalibratedClassifierCV
from sklearn.feature_extraction.text import CountVectorizer
from sklearn.svm import LinearSVC

from streamer.features import CalibratedLinearHead, FastHashedTfidf, _char_classes, ngram_id
from training.data import data_dir, guardian_docs

ROOT = Path(__file__).resolve().parents[1]

#: Edge cases: empty and blank texts, punctuation only, accents and combining marks, Greek (final sigma when
#: lower-casing), dotted capital I (lower-cases to two code points), CJK, an emoji outside the BMP, a lone
#: surrogate, digits and underscores (word characters), one-letter words, tabs, non-breaking and ideographic
#: spaces, every kind of line break, a 10,000-letter token, and a text longer than a chunk.
EDGE_CASES = [
    "",
    " ",
    "\n\t \u00a0\u3000",
    "!!! ... ??? -- ,;:",
    "Café naïve coöperate résumé — “quoted” ‘single’ façade",
    "e\u0301cole combining: a\u0308 o\u0302",
    "ΣΟΦΟΣ ΟΔΥΣΣΕΥΣ σοφός Σ",
    "İstanbul İIıi DİYARBAKIR",
    "北京 东京 서울 中文字符没有空格",
    "rocket 🚀 launch 🚀🚀 flag 🇺🇦 ok",
    "lone \ud800 surrogate",
    "a b c d e f g h i j",
    "x1 2024 1_000 __init__ snake_case CamelCase",
    "tab\tseparated\tvalues\r\nwindows\x0bline\x0cfeed\x1cfile\x1dgroup\x85next\u2028line\u2029para",
    "a" * 10_000,
    "word " * 8_000 + "end",
]

CONFIGS: dict[str, dict[str, Any]] = {
    "default": {},
    "char3-5": {"char_ngram": (3, 5)},
    "char4-6 (short words whole)": {"char_ngram": (4, 6)},
    "word1-3": {"analyzer": "word", "word_ngram": (1, 3)},
    "word2-2": {"analyzer": "word", "word_ngram": (2, 2)},
    "char only, no lowercase": {"analyzer": "char_wb", "lowercase": False},
    "char from the first 40 characters": {"char_max_chars": 40},
    "small chunks": {"chunk_chars": 64},
}


def example_texts() -> list[str]:
    texts = []
    for line in (ROOT / "examples" / "articles.jsonl").read_text(encoding="utf-8").splitlines():
        record = json.loads(line)
        texts += [record["title"], record["text"], f"{record['title']}. {record['title']}.\n{record['text']}"]
    return texts


def guardian_texts(limit: int = 40) -> list[str]:
    return [f"{title}\n{text}" for title, text in guardian_docs(data_dir(), limit)]


def sklearn_ngrams(text: str, params: dict[str, Any]) -> Counter[int]:
    """The ids of every n-gram scikit-learn's analyzers produce for ``text`` under the featurizer's settings."""
    f = FastHashedTfidf(**params)
    lowercase = f.lowercase
    found: Counter[int] = Counter()
    if f.analyzer != "char_wb":
        words = CountVectorizer(analyzer="word", ngram_range=f.word_ngram, lowercase=lowercase).build_analyzer()
        found.update(("word", ngram_id(g, "word")) for g in words(text))  # type: ignore[misc]
    if f.analyzer != "word":
        chars = CountVectorizer(analyzer="char_wb", ngram_range=f.char_ngram, lowercase=lowercase).build_analyzer()
        head = text.lower() if lowercase else text
        if f.char_max_chars:
            head = head[: f.char_max_chars]
        found.update(("char", ngram_id(g, "char")) for g in chars(head))  # type: ignore[misc]
    return found


def featurizer_ngrams(texts: list[str], params: dict[str, Any]) -> list[Counter[Any]]:
    out = []
    for row in FastHashedTfidf(**params).ngram_ids(texts):
        found: Counter[Any] = Counter()
        for kind, ids in row.items():
            found.update((kind, int(i)) for i in ids)
        out.append(found)
    return out


def assert_same_ngrams(texts: list[str], params: dict[str, Any]) -> None:
    got = featurizer_ngrams(texts, params)
    assert len(got) == len(texts)
    for text, mine in zip(texts, got, strict=True):
        expected = sklearn_ngrams(text, params)
        if mine != expected:
            missing, extra = expected - mine, mine - expected
            pytest.fail(f"{params}: text {text[:60]!r}: {sum(missing.values())} n-grams missing, "
                        f"{sum(extra.values())} extra (of {sum(expected.values())})")


def test_character_classes_are_pythons() -> None:
    """Regex \\w is ``str.isalnum()`` or ``_``; whitespace is what ``str.split()`` splits on."""
    table = _char_classes()
    every = [chr(c) for c in range(0x110000)]
    is_word = np.fromiter((ch.isalnum() or ch == "_" for ch in every), dtype=bool, count=len(every))
    is_space = np.fromiter((ch.isspace() for ch in every), dtype=bool, count=len(every))
    assert np.array_equal((table & 1).astype(bool), is_word)
    assert np.array_equal((table & 2).astype(bool), is_space)
    assert is_word.sum() > 100_000 and 20 < is_space.sum() < 40  # the tables are not trivially empty


@pytest.mark.parametrize("name", list(CONFIGS))
def test_same_ngrams_as_sklearn_on_examples_and_edge_cases(name: str) -> None:
    texts = example_texts() + EDGE_CASES
    assert_same_ngrams(texts, CONFIGS[name])


@pytest.mark.parametrize("name", ["default", "char3-5", "word1-3"])
def test_same_ngrams_as_sklearn_on_guardian_articles(name: str) -> None:
    texts = guardian_texts()
    if not texts:
        # The corpus is research-licensed and never committed, so a clean CI machine has no copy; the same check
        # runs there on examples/articles.jsonl and the synthetic edge cases (test above).
        pytest.skip("guardian/articles.jsonl is not under the datasets root on this machine")
    assert_same_ngrams(texts, CONFIGS[name])


def test_ngram_ids_tell_sklearn_ngrams_apart() -> None:
    """Equal id multisets mean equal n-grams only if the ids separate the n-grams. 64-bit word ids: no collision
    on the sample. 32-bit character ids: no more than chance allows (n²/2³³, well under one here)."""
    texts = example_texts() + EDGE_CASES[:14] + guardian_texts(20)
    words = CountVectorizer(analyzer="word", ngram_range=(1, 3)).build_analyzer()
    chars = CountVectorizer(analyzer="char_wb", ngram_range=(2, 5)).build_analyzer()
    word_grams = {g for t in texts for g in words(t)}
    assert len({ngram_id(g, "word") for g in word_grams}) == len(word_grams) > 1000
    char_grams = {g for t in texts for g in chars(t)}
    assert len(char_grams) - len({ngram_id(g, "char") for g in char_grams}) <= 1 and len(char_grams) > 1000


def bucket_of(kind: str, gram_id: int, n_bits: int) -> int:
    """The id's top n_bits; character buckets after the word buckets."""
    if kind == "word":
        return gram_id >> (64 - n_bits)
    return (1 << n_bits) + (gram_id >> (32 - n_bits))


def reference_tfidf(f: FastHashedTfidf, texts: list[str]) -> np.ndarray:
    """What transform must give, computed n-gram by n-gram from scikit-learn's analyzers and ngram_id."""
    params = f.get_params()
    out = np.zeros((len(texts), f.n_columns))
    for row, text in enumerate(texts):
        counts: Counter[int] = Counter()
        for (kind, gram_id), n in sklearn_ngrams(text, params).items():
            counts[bucket_of(kind, gram_id, f.n_bits)] += n
        for bucket, n in counts.items():
            column = int(np.searchsorted(f.buckets_, bucket))
            if column < f.n_columns and f.buckets_[column] == bucket:
                tf = 1 + math.log(n) if f.sublinear_tf else n
                out[row, column] = tf * float(f.idf_[column])
        for block in (slice(0, f.n_word_columns_), slice(f.n_word_columns_, f.n_columns)):
            norm = np.linalg.norm(out[row, block])
            if norm:
                out[row, block] /= norm
    return out


@pytest.mark.parametrize(
    "name", ["default", "char4-6 (short words whole)", "word1-3", "char from the first 40 characters"]
)
def test_transform_is_the_tfidf_of_those_ngrams(name: str) -> None:
    texts = example_texts() + EDGE_CASES[:14]
    f = FastHashedTfidf(**CONFIGS[name], min_df=2, max_df=0.9).fit(texts)
    # fit: document frequencies and smooth IDF of the kept buckets, from the reference n-grams
    df: Counter[int] = Counter()
    for text in texts:
        df.update({bucket_of(kind, gram_id, f.n_bits) for kind, gram_id in sklearn_ngrams(text, f.get_params())})
    kept = sorted(b for b, n in df.items() if 2 <= n <= int(0.9 * len(texts)))
    assert f.buckets_.tolist() == kept and len(kept) > 100
    expected_idf = [math.log((1 + len(texts)) / (1 + df[b])) + 1 for b in kept]
    np.testing.assert_allclose(f.idf_, expected_idf, rtol=1e-6)
    x = f.transform(texts)
    assert x.format == "csc" and x.dtype == np.float32 and x.has_canonical_format
    np.testing.assert_allclose(x.toarray(), reference_tfidf(f, texts), rtol=2e-6, atol=1e-7)


def test_max_features_keeps_the_most_frequent_buckets_per_block() -> None:
    texts = example_texts()
    full = FastHashedTfidf(min_df=1, max_df=1.0, word_max_features=None, char_max_features=None).fit(texts)
    capped = FastHashedTfidf(min_df=1, max_df=1.0, word_max_features=50, char_max_features=70).fit(texts)
    assert capped.n_word_columns_ == 50 and capped.n_columns == 120
    assert set(capped.buckets_) <= set(full.buckets_)
    # every kept bucket is at least as frequent as every dropped one (smooth IDF falls as df rises)
    idf = dict(zip(full.buckets_.tolist(), full.idf_.tolist(), strict=True))
    half = 1 << full.n_bits
    for block in (0, 1):
        kept = {b for b in capped.buckets_.tolist() if (b >= half) == block}
        dropped = {b for b in full.buckets_.tolist() if (b >= half) == block} - kept
        assert max(idf[b] for b in kept) <= min(idf[b] for b in dropped) + 1e-6


def test_more_documents_than_one_group() -> None:
    """n_bits=22 leaves 9 key bits for the document: 512 per group; 1,100 documents take three groups."""
    texts = [f"{t} {i}" for i in range(1100) for t in example_texts()[i % 30 : i % 30 + 1]]
    f = FastHashedTfidf(n_bits=22, min_df=1).fit(texts)
    whole = f.transform(texts)
    parts = sp.vstack([f.transform(texts[i : i + 300]) for i in range(0, 1100, 300)])
    assert whole.shape == (1100, f.n_columns)
    assert (whole != parts).nnz == 0


def checksum(x: Any) -> str:
    x = x.tocsc()
    digest = hashlib.sha256()
    for part in (x.data, x.indices.astype(np.int64), x.indptr.astype(np.int64)):
        digest.update(np.ascontiguousarray(part).tobytes())
    return digest.hexdigest()


CHECKSUM_SCRIPT = """
import hashlib, json, sys
import numpy as np
sys.path.insert(0, sys.argv[1])
from streamer.features import FastHashedTfidf
texts = json.loads(sys.stdin.read())
x = FastHashedTfidf(min_df=1).fit(texts).transform(texts).tocsc()
digest = hashlib.sha256()
for part in (x.data, x.indices.astype(np.int64), x.indptr.astype(np.int64)):
    digest.update(np.ascontiguousarray(part).tobytes())
print(digest.hexdigest())
"""


def test_same_matrix_in_other_processes() -> None:
    """No dependence on Python's per-process string hashing (two hash seeds) or anything else in the process."""
    texts = example_texts() + EDGE_CASES[:14]
    here = checksum(FastHashedTfidf(min_df=1).fit(texts).transform(texts))
    for seed in ("1", "2"):
        done = subprocess.run([sys.executable, "-c", CHECKSUM_SCRIPT, str(ROOT)], input=json.dumps(texts),
                              capture_output=True, text=True, timeout=120, env={"PYTHONHASHSEED": seed}, check=True)
        assert done.stdout.strip() == here


def test_pickle_round_trip() -> None:
    texts = example_texts()
    f = FastHashedTfidf().fit(texts)
    state = f.__getstate__()
    assert "_lookup" not in state  # derived from buckets_, rebuilt on load, not shipped
    again = pickle.loads(pickle.dumps(f))
    assert again.get_params() == f.get_params()
    assert (again.transform(texts + EDGE_CASES) != f.transform(texts + EDGE_CASES)).nnz == 0


def test_threads_get_what_one_thread_gets() -> None:
    texts = example_texts() + EDGE_CASES + guardian_texts(60)
    f = FastHashedTfidf(min_df=1).fit(texts)
    batches = [texts[i : i + 7] for i in range(0, len(texts), 7)] * 6
    serial = [f.transform(b) for b in batches]
    with ThreadPoolExecutor(max_workers=4) as pool:
        threaded = list(pool.map(f.transform, batches))
    for a, b in zip(serial, threaded, strict=True):
        assert a.shape == b.shape and (a != b).nnz == 0


def test_empty_batch_and_unfitted() -> None:
    f = FastHashedTfidf(min_df=1).fit(example_texts())
    assert f.transform([]).shape == (0, f.n_columns)
    with pytest.raises(AttributeError):
        FastHashedTfidf().transform(["text"])
    with pytest.raises(ValueError, match="analyzer"):
        FastHashedTfidf(analyzer="char").fit(["text"])
    with pytest.raises(ValueError, match="char_ngram"):
        FastHashedTfidf(char_ngram=(1, 3)).fit(["text"])


@pytest.mark.parametrize("n_classes", [2, 5])
def test_calibrated_linear_head_gives_sklearns_probabilities(n_classes: int) -> None:
    texts = example_texts() * 3
    rng = np.random.default_rng(0)
    y = np.array([f"class{i % n_classes}" for i in range(len(texts))])
    rng.shuffle(y)
    f = FastHashedTfidf(min_df=1).fit(texts)
    x = f.transform(texts)
    model = CalibratedClassifierCV(LinearSVC(C=0.5, random_state=0), method="sigmoid", cv=3, ensemble=False)
    model.fit(x.tocsr(), y)
    head = pickle.loads(pickle.dumps(CalibratedLinearHead.from_calibrated(model)))
    assert list(head.classes_) == list(model.classes_)
    expected = model.predict_proba(x.tocsr())
    for matrix in (x, x.tocsr()):
        got = head.predict_proba(matrix)
        np.testing.assert_allclose(got, expected, rtol=0, atol=1e-12)
        np.testing.assert_allclose(got.sum(axis=1), 1.0)
    assert (head.predict(x) == model.predict(x.tocsr())).all()


def test_train_recipe_with_the_fast_featurizer() -> None:
    """training.train builds FastHashedTfidf and compact heads for featurizer="fast"; the bundle meets the contract."""
    from streamer.artifact import ModelBundle, check_bundle
    from training.data import LabeledRow
    from training.train import Recipe, build_features, fit_bundle

    rows = []
    for i, line in enumerate((ROOT / "examples" / "articles.jsonl").read_text(encoding="utf-8").splitlines() * 3):
        record = json.loads(line)
        rows.append(LabeledRow(id=f"r{i}", title=record["title"], text=record["text"], **record["expected"]))
    recipe = Recipe(featurizer="fast", analyzer="word+char_wb", char_min=3, char_max=5, min_df=1)
    assert isinstance(build_features(recipe).steps[-1][1], FastHashedTfidf)
    payload = fit_bundle(recipe, rows, seed=0, none_shift=-0.25)
    assert all(isinstance(h, CalibratedLinearHead) for h in payload["heads"].values())
    bundle = ModelBundle(payload, {"name": "fast-test", "version": "0"})
    check_bundle(bundle, [(r.title, r.text) for r in rows[:20]])
    predicted = bundle.classify([(r.title, r.text) for r in rows[:32]])
    hits = sum(p["incident"]["label"] == r.incident for p, r in zip(predicted, rows, strict=False))
    assert hits >= 24  # learnt from the very rows: a working pipeline gets nearly all


def test_token_pattern_is_sklearns_default() -> None:
    """The featurizer hard-codes scikit-learn's default word pattern; fail loudly if scikit-learn changes it."""
    assert CountVectorizer().token_pattern == r"(?u)\b\w\w+\b"
    assert re.findall(r"(?u)\b\w\w+\b", "a bc d_e 12") == ["bc", "d_e", "12"]
