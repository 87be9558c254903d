"""Word-level tokenizer for text-classifier: deterministic, built from the training texts only."""

from __future__ import annotations

import re
from collections import Counter
from collections.abc import Iterable
from typing import Any

PAD_ID = 0
UNKNOWN_ID = 1
_FIRST_WORD_ID = 2
TOKENIZER_KIND = "lowercase-words"
# Words are runs of letters/digits, keeping an inner apostrophe ("don't", "it's") as one token.
_WORD = re.compile(r"\w+(?:'\w+)?")


def split_words(text: str) -> list[str]:
    return _WORD.findall(text.lower())


class Tokenizer:
    """ids: 0 padding, 1 unknown word, then the vocabulary by descending frequency (ties alphabetical)."""

    def __init__(self, words: list[str]) -> None:
        self.words = list(words)
        self._ids = {word: index + _FIRST_WORD_ID for index, word in enumerate(self.words)}

    @classmethod
    def fit(cls, texts: Iterable[str], max_vocab: int = 20000, min_freq: int = 1) -> Tokenizer:
        """`max_vocab` counts words only; the vocabulary size is at most max_vocab + 2."""
        counts = Counter(word for text in texts for word in split_words(text))
        ranked = sorted((word for word, count in counts.items() if count >= min_freq),
                        key=lambda word: (-counts[word], word))
        return cls(ranked[:max_vocab])

    @property
    def vocab_size(self) -> int:
        return len(self.words) + _FIRST_WORD_ID

    def encode(self, text: str, max_len: int = 256) -> list[int]:
        """Word ids, truncated to max_len, unpadded (the collate pads a batch)."""
        return [self._ids.get(word, UNKNOWN_ID) for word in split_words(text)[:max_len]]

    def to_dict(self) -> dict[str, Any]:
        return {"kind": TOKENIZER_KIND, "pad_id": PAD_ID, "unknown_id": UNKNOWN_ID, "words": list(self.words)}

    @classmethod
    def from_dict(cls, data: dict[str, Any]) -> Tokenizer:
        if data.get("kind") != TOKENIZER_KIND:
            raise ValueError(f"not a {TOKENIZER_KIND} tokenizer: kind {data.get('kind')!r}")
        return cls(list(data["words"]))
