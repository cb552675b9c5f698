"""Text preparation shared by training and the worker.

Everything a pickled model references must be importable by the worker, and ``streamer`` never imports
``training``: so every custom transformer a bundle may contain lives here.

>>> compose("Quake hits Italy", "Hundreds dead.", max_chars=100)
'Quake hits Italy. Quake hits Italy.\\nHundreds dead.'
"""

from __future__ import annotations

import re
from collections.abc import Iterable, Sequence
from itertools import pairwise
from typing import Any

import numpy as np
from sklearn.base import BaseEstimator, TransformerMixin

#: A document as the model sees it: ``(title, text)``.
Doc = tuple[str, str]


def compose(title: str, text: str, max_chars: int = 2500) -> str:
    """Title twice (headlines carry the label more often than any body sentence), then the text's head.

    Reading only the first ``max_chars`` characters bounds the cost per article: the incident that makes
    the news is in the headline or the first paragraphs far more often than at the end.
    """
    title = title.strip()
    body = text[:max_chars] if max_chars > 0 else text
    if title:
        return f"{title}. {title}.\n{body}"
    return body


class DocumentText(BaseEstimator, TransformerMixin):
    """``(title, text)`` pairs → one string per document (see :func:`compose`)."""

    def __init__(self, max_chars: int = 2500) -> None:
        self.max_chars = max_chars

    def fit(self, docs: Iterable[Doc], y: Any = None) -> DocumentText:
        return self

    def transform(self, docs: Sequence[Doc]) -> list[str]:
        return [compose(title, text, self.max_chars) for title, text in docs]


def as_docs(rows: Iterable[Any]) -> list[Doc]:
    """Mappings or objects with ``title``/``text`` → model input documents."""
    out: list[Doc] = []
    for row in rows:
        if isinstance(row, tuple):
            out.append((str(row[0] or ""), str(row[1] or "")))
        elif isinstance(row, dict):
            out.append((str(row.get("title") or ""), str(row.get("text") or "")))
        else:
            out.append((str(getattr(row, "title", "") or ""), str(getattr(row, "text", "") or "")))
    return out


def softmax_rows(scores: np.ndarray) -> np.ndarray:
    """Row-wise softmax, numerically stable; used to turn adjusted log-probabilities back into scores."""
    shifted = scores - scores.max(axis=1, keepdims=True)
    np.exp(shifted, out=shifted)
    shifted /= shifted.sum(axis=1, keepdims=True)
    return shifted



# ---------------------------------------------------------------------------------------------------------
# Article features for the trained bundles (training/train.py builds them; the worker only unpickles them).
# Throughput matters as much as accuracy here (≥ 2,000 full articles/s on one core), so every step is a
# C-level string or sparse operation; Python loops run per document, never per token.
# ---------------------------------------------------------------------------------------------------------

#: Words that mark a sentence reporting an incident. Whole lower-case words, matched by set intersection
#: (a regex alternation of ~200 words costs more than tokenising the whole article).
INCIDENT_CUES: frozenset[str] = frozenset(
    """
    kill killed kills killing dead death deaths died dies wounded wounding injured injuring injuries casualties
    strike strikes airstrike airstrikes air raid raids drone drones warplane warplanes jets bombed bombing
    bombings bomb bombs shelling shelled shells artillery mortar mortars missile missiles rocket rockets
    exploded explosion explosions blast blasts ied grenade grenades suicide gunman gunmen shooting shootings
    shot stabbed stabbing attack attacked attacks attacker attackers clash clashes clashed fighting offensive
    ambush ambushed militants militant rebels insurgents troops kidnapped kidnapping abducted abduction hostage
    hostages hijacked protest protests protesters protested demonstrators demonstration marched march rally
    rallies strikers riot riots rioters rioting looting looted earthquake quake flood floods flooding storm
    hurricane typhoon cyclone tornado wildfire wildfires landslide eruption drought heatwave crash crashed
    derailed collapsed collapse sank capsized fire blaze arrested arrest charged sentenced convicted jailed
    fraud seized hackers hacked hack breach ransomware malware phishing outbreak epidemic infected infections
    virus cases massacre murdered murder
    """.split()  # noqa: SIM905 - a word list reads better as prose than as 150 quoted strings
)

_SENTENCE_SPLIT = re.compile(r"(?<=[.!?])\s+|\n+")
_WORD = re.compile(r"[a-z]+")


class ArticleText(BaseEstimator, TransformerMixin):
    """``(title, text)`` → one lower-case string: the title ``title_repeat`` times, the text's first
    ``max_chars``, then up to ``cue_sentences`` incident sentences found between ``max_chars`` and ``scan_chars``.

    Why: the headline carries the label more often than any body sentence, so it is weighted; reading a
    bounded prefix bounds the cost per article; but in a long article the incident sentence ("the coalition
    airstrike killed 62 soldiers") may sit past that prefix, so sentences with casualty/attack/disaster cues
    are pulled in from further on. Short texts (most rows) are read whole and get no extra view.
    """

    def __init__(
        self, max_chars: int = 2000, title_repeat: int = 2, cue_sentences: int = 3, scan_chars: int = 6000
    ) -> None:
        self.max_chars = max_chars
        self.title_repeat = title_repeat
        self.cue_sentences = cue_sentences
        self.scan_chars = scan_chars

    def fit(self, docs: Iterable[Doc], y: Any = None) -> ArticleText:
        return self

    def compose(self, title: str, text: str) -> str:
        title = title.strip().lower()
        head = text if self.max_chars <= 0 else text[: self.max_chars]
        parts = [title] * self.title_repeat if title else []
        parts.append(head.lower())
        if self.cue_sentences > 0 and self.max_chars > 0 and len(text) > self.max_chars:
            taken = 0
            for sentence in _SENTENCE_SPLIT.split(text[self.max_chars : self.scan_chars].lower()):
                if not INCIDENT_CUES.isdisjoint(_WORD.findall(sentence)):
                    parts.append(sentence)
                    taken += 1
                    if taken >= self.cue_sentences:
                        break
        return "\n".join(parts)

    def transform(self, docs: Sequence[Doc]) -> list[str]:
        return [self.compose(title, text) for title, text in docs]


_TOKEN = re.compile(r"\b\w\w+\b")


class WordNgrams:
    """Analyzer: lower-case word unigrams (+ bigrams). About 10 % faster than scikit-learn's built-in one,
    and a plain class so it pickles (a lambda or closure would not)."""

    def __init__(self, bigrams: bool = True) -> None:
        self.bigrams = bigrams

    def __call__(self, doc: str) -> list[str]:
        tokens = _TOKEN.findall(doc.lower())
        if not self.bigrams:
            return tokens
        return tokens + [f"{a} {b}" for a, b in pairwise(tokens)]


class HashedTfidf(BaseEstimator, TransformerMixin):
    """Hashed n-gram counts → kept columns → sublinear TF-IDF, L2-normalised, float32.

    Why not TfidfVectorizer: its per-token vocabulary lookup is a Python loop and costs about half the
    classification time; hashing runs in C. Why keep a column subset: 2**20 hashed columns would make
    the linear heads 30+ MB; fitting keeps only n-grams seen in ``min_df`` documents (at most
    ``max_features``, by document frequency), which is what a vocabulary would have kept.
    """

    def __init__(
        self,
        n_features: int = 2**20,
        bigrams: bool = True,
        min_df: int = 2,
        max_df: float = 0.5,
        max_features: int = 150_000,
        sublinear_tf: bool = True,
        analyzer: str = "word",
        char_ngram: tuple[int, int] = (3, 5),
    ) -> None:
        self.n_features = n_features
        self.bigrams = bigrams
        self.min_df = min_df
        self.max_df = max_df
        self.max_features = max_features
        self.sublinear_tf = sublinear_tf
        self.analyzer = analyzer
        self.char_ngram = char_ngram

    def _hasher(self) -> Any:
        from sklearn.feature_extraction.text import HashingVectorizer

        common = {"n_features": self.n_features, "alternate_sign": False, "norm": None, "dtype": np.float32}
        if self.analyzer == "word":
            return HashingVectorizer(analyzer=WordNgrams(self.bigrams), **common)
        return HashingVectorizer(analyzer=self.analyzer, ngram_range=self.char_ngram, lowercase=True, **common)

    def fit(self, texts: Sequence[str], y: Any = None) -> HashedTfidf:
        counts = self._hasher().transform(texts).tocsc()
        n_docs = counts.shape[0]
        df = np.diff(counts.indptr)
        ok = (df >= self.min_df) & (df <= max(1, int(self.max_df * n_docs)))
        candidates = np.flatnonzero(ok)
        if len(candidates) > self.max_features:
            order = np.argsort(-df[candidates], kind="stable")[: self.max_features]
            candidates = np.sort(candidates[order])
        self.columns_ = candidates.astype(np.int64)
        self.idf_ = (np.log((1 + n_docs) / (1 + df[self.columns_])) + 1).astype(np.float32)
        return self

    def transform(self, texts: Sequence[str]) -> Any:
        import scipy.sparse as sp
        from sklearn.preprocessing import normalize

        x = self._hasher().transform(texts)[:, self.columns_].tocsr()
        if self.sublinear_tf:
            np.log1p(x.data, out=x.data)
        x = x @ sp.diags(self.idf_, format="csr")
        return normalize(x, copy=False).astype(np.float32, copy=False)

    def fit_transform(self, texts: Sequence[str], y: Any = None, **fit_params: Any) -> Any:
        return self.fit(texts).transform(texts)
