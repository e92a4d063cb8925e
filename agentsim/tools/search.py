"""Offline BM25 search over a shipped reference collection (the CIA World Factbook).

The collection is one paragraph per country and field (``data/factbook.jsonl.gz``; source and
licence in ``data/README.md``). The index is built once per process, on first use.
"""

from __future__ import annotations

import functools
import gzip
import math
import re
from collections import Counter
from collections.abc import Sequence
from pathlib import Path
from typing import Annotated

import msgspec
import numpy as np
import numpy.typing as npt

CORPUS_PATH = Path(__file__).with_name("data") / "factbook.jsonl.gz"
_TOKEN = re.compile(r"[a-z0-9]+")
_STOPWORDS = frozenset(
    _TOKEN.findall(
        "a an and are as at be by for from has have in is it its of on or that the this to was "
        "were what which who whom with how when where why do does did"
    )
)
_SNIPPET_CHARS = 600


class Document(msgspec.Struct, frozen=True):
    title: str
    text: str


def tokenize(text: str) -> list[str]:
    """Lowercase word tokens without stopwords."""
    return [t for t in _TOKEN.findall(text.lower()) if t not in _STOPWORDS]


class BM25Index:
    """Okapi BM25 over a list of documents (title, weighted, and text indexed together)."""

    def __init__(
        self,
        docs: Sequence[Document],
        *,
        k1: float = 1.5,
        b: float = 0.75,
        title_weight: int = 3,
    ) -> None:
        self.docs = list(docs)
        self.title_weight = title_weight
        self.k1 = k1
        self.b = b
        postings: dict[str, list[tuple[int, int]]] = {}
        lengths = np.zeros(len(self.docs), dtype=np.float64)
        for i, doc in enumerate(self.docs):
            # Titles name the country and the field, which short queries mostly consist of.
            title = tokenize(doc.title) * self.title_weight
            counts = Counter(title + tokenize(doc.text))
            lengths[i] = sum(counts.values())
            for term, tf in counts.items():
                postings.setdefault(term, []).append((i, tf))
        self.lengths = lengths
        self.avg_length = float(lengths.mean()) if len(lengths) else 0.0
        self.postings: dict[str, tuple[npt.NDArray[np.int64], npt.NDArray[np.float64]]] = {
            term: (
                np.array([d for d, _ in rows], dtype=np.int64),
                np.array([tf for _, tf in rows], dtype=np.float64),
            )
            for term, rows in postings.items()
        }

    def idf(self, term: str) -> float:
        n = len(self.docs)
        df = len(self.postings[term][0]) if term in self.postings else 0
        return math.log(1.0 + (n - df + 0.5) / (df + 0.5))

    def scores(self, query: str) -> npt.NDArray[np.float64]:
        """BM25 score of every document for ``query``."""
        scores = np.zeros(len(self.docs), dtype=np.float64)
        norm = self.k1 * (1.0 - self.b + self.b * self.lengths / max(self.avg_length, 1e-9))
        for term in set(tokenize(query)):
            if term not in self.postings:
                continue
            ids, tf = self.postings[term]
            scores[ids] += self.idf(term) * tf * (self.k1 + 1.0) / (tf + norm[ids])
        return scores

    def top(self, query: str, k: int) -> list[tuple[Document, float]]:
        """The ``k`` best documents with a positive score, best first (ties by position)."""
        scores = self.scores(query)
        positive = np.flatnonzero(scores > 0)
        order = positive[np.lexsort((positive, -scores[positive]))][:k]
        return [(self.docs[i], float(scores[i])) for i in order]


def load_documents(path: Path = CORPUS_PATH) -> list[Document]:
    """Read a ``.jsonl.gz`` collection of ``{"title", "text"}`` rows."""
    decoder = msgspec.json.Decoder(Document)
    with gzip.open(path, "rb") as f:
        return [decoder.decode(line) for line in f if line.strip()]


@functools.cache
def default_index() -> BM25Index:
    """The index over the shipped collection, built on first use."""
    return BM25Index(load_documents())


def _snippet(text: str) -> str:
    if len(text) <= _SNIPPET_CHARS:
        return text
    return text[:_SNIPPET_CHARS].rsplit(" ", 1)[0] + " ..."


def search(query: str, k: Annotated[int, msgspec.Meta(ge=1, le=10)] = 3) -> str:
    """Search an offline encyclopedia of countries (CIA World Factbook) for facts.

    Returns the best matching paragraphs, each with its title (country - section - field).

    Args:
        query: Keywords to look for, for example "capital of Peru".
        k: How many paragraphs to return (1 to 10).
    """
    hits = default_index().top(query, k)
    if not hits:
        return f"No results for {query!r}."
    return "\n\n".join(
        f"[{n}] {doc.title}\n{_snippet(doc.text)}" for n, (doc, _) in enumerate(hits, 1)
    )
