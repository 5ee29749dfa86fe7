"""Text -> model inputs: a TF-IDF bag of words or padded token ids, fitted on training texts only.

A text dataset hands :func:`vectorize` its training texts, the rows of them to fit on (the training
part, i.e. without the validation hold-out, so that nothing is learnt from validation or test text) and
its test texts. The result is a flat mapping of numpy arrays, ready to be cached as ``.npz``;
:func:`unpack` turns it back into inputs, checking it on the way.

Options (``representation`` picks one; :data:`OPTIONS` lists which options matter for each):

* ``tfidf`` (default, for an MLP): scikit-learn ``TfidfVectorizer`` with ``sublinear_tf=True`` (1 +
  log tf: long documents do not dominate), ``min_df`` (default 2: a word must occur in two training
  documents) and ``max_features`` (default 10,000 most frequent terms), lowercase, tokens of 2+ word
  characters, l2-normalised rows; no stop list (IDF down-weights common words). Stored sparse (CSR,
  float32); ``meta["features"]`` lists the terms.
* ``tokens`` (for a text CNN): lowercase ``\\w+`` tokens; vocabulary = training tokens seen at least
  ``min_count`` (2) times, most frequent first (ties alphabetical), at most ``max_vocab`` (20,000) ids
  including 0 = padding and 1 = unknown; each text keeps its first ``max_len`` (256) tokens, padded
  with 0 at the end. int64 (N, max_len); ``meta["vocab"]`` (id -> token) and ``meta["vocab_size"]``.
"""

from __future__ import annotations

import re
from collections import Counter
from collections.abc import Mapping, Sequence
from typing import Any

import numpy as np

from ..errors import UserError

DEFAULT_OPTIONS: dict[str, Any] = {
    "representation": "tfidf",
    "max_features": 10000,  # tfidf
    "min_df": 2,  # tfidf
    "max_len": 256,  # tokens
    "max_vocab": 20000,  # tokens (ids 0 and 1 included)
    "min_count": 2,  # tokens
}
OPTIONS = {"tfidf": ("max_features", "min_df"), "tokens": ("max_len", "max_vocab", "min_count")}
_MINIMUM = {"max_features": 1, "min_df": 1, "max_len": 1, "max_vocab": 3, "min_count": 1}
PAD, UNK = "<pad>", "<unk>"  # ids 0 and 1; \w+ tokens can never look like these
_WORD = re.compile(r"\w+")

Arrays = dict[str, np.ndarray]


def check_options(name: str, opts: Mapping[str, Any]) -> None:
    """Values the types alone do not rule out; ``name`` is the dataset, for the message."""
    rep = opts["representation"]
    if rep not in OPTIONS:
        raise UserError(f"option representation={rep!r} for dataset {name}: allowed: {', '.join(OPTIONS)}")
    for key, low in _MINIMUM.items():
        if opts[key] < low:
            raise UserError(f"option {key}={opts[key]!r} for dataset {name}: must be an integer >= {low}")


def used_options(opts: Mapping[str, Any]) -> dict[str, Any]:
    """The representation and the options that matter for it (the others have no effect)."""
    rep = opts["representation"]
    return {"representation": rep, **{k: opts[k] for k in OPTIONS[rep]}}


# ---------------------------------------------------------------- token ids


def tokenize(text: str) -> list[str]:
    return _WORD.findall(text.lower())


def build_vocab(token_lists: Sequence[Sequence[str]], max_vocab: int, min_count: int) -> list[str]:
    """id -> token: padding, unknown, then tokens seen >= ``min_count`` times, most frequent first."""
    counts = Counter(t for tokens in token_lists for t in tokens)
    kept = sorted((t for t, c in counts.items() if c >= min_count), key=lambda t: (-counts[t], t))
    return [PAD, UNK, *kept[: max_vocab - 2]]


def encode(token_lists: Sequence[Sequence[str]], vocab: Sequence[str], max_len: int) -> np.ndarray:
    """(N, max_len) int64 ids: the first ``max_len`` tokens, unknown -> 1, padded with 0 at the end."""
    index = {t: i for i, t in enumerate(vocab)}
    out = np.zeros((len(token_lists), max_len), dtype=np.int64)
    for row, tokens in enumerate(token_lists):
        ids = [index.get(t, 1) for t in tokens[:max_len]]
        out[row, : len(ids)] = ids
    return out


# ---------------------------------------------------------------- vectorising


def vectorize(
    name: str, train_texts: Sequence[str], fit_idx: np.ndarray, test_texts: Sequence[str], opts: Mapping[str, Any]
) -> Arrays:
    """Arrays of both splits in the representation ``opts`` asks for, learnt from ``train_texts[fit_idx]``.
    ``name`` (the dataset) only labels errors."""
    if opts["representation"] == "tokens":
        return _token_arrays(train_texts, fit_idx, test_texts, opts)
    return _tfidf_arrays(name, train_texts, fit_idx, test_texts, opts)


def _token_arrays(train_texts, fit_idx, test_texts, opts) -> Arrays:
    train_tokens = [tokenize(t) for t in train_texts]
    vocab = build_vocab([train_tokens[i] for i in fit_idx], opts["max_vocab"], opts["min_count"])
    return {  # int32 on disk (ids < max_vocab), int64 in memory
        "x_train": encode(train_tokens, vocab, opts["max_len"]).astype(np.int32),
        "x_test": encode([tokenize(t) for t in test_texts], vocab, opts["max_len"]).astype(np.int32),
        "vocab": np.array(vocab, dtype=str),
    }


def _tfidf_arrays(name, train_texts, fit_idx, test_texts, opts) -> Arrays:
    fit_texts = [train_texts[i] for i in fit_idx]
    from sklearn.feature_extraction.text import TfidfVectorizer  # lazy: the sklearn import is slow

    vec = TfidfVectorizer(
        sublinear_tf=True, min_df=opts["min_df"], max_features=opts["max_features"], dtype=np.float32
    )
    try:
        vec.fit(fit_texts)
    except ValueError as exc:  # e.g. "After pruning, no terms remain"
        raise UserError(
            f"{name}: TF-IDF on {len(fit_texts)} training documents with min_df={opts['min_df']} failed ({exc})"
        ) from None
    out = {"features": np.array(vec.get_feature_names_out(), dtype=str)}
    for part, texts in (("x_train", train_texts), ("x_test", test_texts)):
        x = vec.transform(texts).tocsr()
        x.sort_indices()  # one canonical layout, so equal matrices are stored as equal arrays
        out.update({f"{part}_data": x.data, f"{part}_indices": x.indices, f"{part}_indptr": x.indptr,
                    f"{part}_shape": np.array(x.shape, dtype=np.int64)})
    return out


def unpack(arrays: Mapping[str, np.ndarray]) -> tuple[Any, Any, dict[str, Any], tuple[int, ...]]:
    """(x_train, x_test, meta, input_shape) from :func:`vectorize`'s arrays, fresh or cached; raises
    ValueError/KeyError on inconsistent ones (so that a damaged cache file is rebuilt)."""
    if "vocab" in arrays:
        return _unpack_tokens(arrays)
    return _unpack_tfidf(arrays)


def _unpack_tokens(arrays):
    vocab = [str(t) for t in arrays["vocab"]]
    x_train, x_test = (arrays[k].astype(np.int64) for k in ("x_train", "x_test"))
    if x_train.ndim != 2 or x_test.shape[1:] != x_train.shape[1:] or vocab[:2] != [PAD, UNK]:
        raise ValueError("token arrays of inconsistent shapes")
    for x in (x_train, x_test):
        if x.size and (x.min() < 0 or x.max() >= len(vocab)):
            raise ValueError("token ids outside the vocabulary")
    meta = {"representation": "tokens", "vocab": vocab, "vocab_size": len(vocab)}
    return x_train, x_test, meta, (x_train.shape[1],)


def _unpack_tfidf(arrays):
    from scipy.sparse import csr_matrix

    features = [str(t) for t in arrays["features"]]
    xs = []
    for part in ("x_train", "x_test"):
        shape = tuple(int(v) for v in arrays[f"{part}_shape"])
        x = csr_matrix((arrays[f"{part}_data"], arrays[f"{part}_indices"], arrays[f"{part}_indptr"]), shape=shape)
        x.check_format(full_check=True)
        if shape[1] != len(features) or x.dtype != np.float32:
            raise ValueError("TF-IDF matrix does not match its feature list")
        xs.append(x)
    return xs[0], xs[1], {"representation": "tfidf", "features": features}, (len(features),)
