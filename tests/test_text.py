"""The text vectoriser (nas_lth.data.text) on a hand-made corpus: fitted on the training rows only."""

from __future__ import annotations

import numpy as np
import pytest

from nas_lth.data import text
from nas_lth.errors import UserError

TRAIN = ["b a b c", "a b d", "e"]
TEST = ["a z b", "b b b b b b"]
FIT = np.array([0, 1])  # row 2 ("e") is held out for validation: the vectoriser must not learn from it
WORDS_TRAIN = ["apple banana apple x", "banana cherry", "cherry cherry date"]  # TF-IDF keeps 2+ characters
WORDS_TEST = ["apple zebra", "zebra"]


def opts(**kw):
    return {**text.DEFAULT_OPTIONS, **kw}


def test_vocabulary_most_frequent_first_ties_alphabetical_capped():
    tokens = [text.tokenize(t) for t in ("B a b c", "a b d")]
    assert tokens[0] == ["b", "a", "b", "c"]  # lowercased
    assert text.build_vocab(tokens, max_vocab=100, min_count=1) == ["<pad>", "<unk>", "b", "a", "c", "d"]
    assert text.build_vocab(tokens, max_vocab=100, min_count=2) == ["<pad>", "<unk>", "b", "a"]
    assert text.build_vocab(tokens, max_vocab=3, min_count=1) == ["<pad>", "<unk>", "b"]  # ids 0, 1 included


def test_token_ids_fit_on_train_only_padded_and_truncated():
    arrays = text.vectorize("toy", TRAIN, FIT, TEST, opts(representation="tokens", max_len=4, min_count=1))
    x_train, x_test, meta, input_shape = text.unpack(arrays)
    assert meta["vocab"] == ["<pad>", "<unk>", "b", "a", "c", "d"] and meta["vocab_size"] == 6
    assert "e" not in meta["vocab"]  # only in a held-out training row
    assert x_train.dtype == np.int64 and input_shape == (4,)
    assert x_train.tolist() == [[2, 3, 2, 4], [3, 2, 5, 0], [1, 0, 0, 0]]  # padded with 0 at the end
    assert x_test.tolist() == [[3, 1, 2, 0],  # "z" only in test: unknown
                               [2, 2, 2, 2]]  # six tokens cut to max_len


def test_tfidf_rows_fit_on_train_only():
    train, test = WORDS_TRAIN, WORDS_TEST
    arrays = text.vectorize("toy", train, np.arange(3), test, opts(min_df=1))
    x_train, x_test, meta, input_shape = text.unpack(arrays)
    assert meta["features"] == ["apple", "banana", "cherry", "date"]  # "x": one character; "zebra": test only
    assert input_shape == (4,) and x_train.dtype == np.float32
    idf = {w: np.log(4 / (1 + df)) + 1 for w, df in (("apple", 1), ("banana", 2), ("cherry", 2), ("date", 1))}
    row = np.array([(1 + np.log(2)) * idf["apple"], idf["banana"], 0, 0])  # sublinear tf: 1 + log 2
    assert np.allclose(x_train.toarray()[0], row / np.linalg.norm(row))
    assert np.allclose(x_test.toarray(), [[1, 0, 0, 0], [0, 0, 0, 0]])  # unknown words weigh nothing
    held_out = text.unpack(text.vectorize("toy", train, np.array([0, 1]), test, opts(min_df=1)))[2]
    assert "date" not in held_out["features"]  # only in the row left out of the fit


def test_tfidf_that_keeps_no_terms_names_the_dataset():
    with pytest.raises(UserError, match="toy: TF-IDF on 2 training documents with min_df=5 failed"):
        text.vectorize("toy", TRAIN, FIT, TEST, opts(min_df=5))


@pytest.mark.parametrize("representation", ["tfidf", "tokens"])
def test_unpack_refuses_inconsistent_arrays(representation):
    arrays = text.vectorize("toy", WORDS_TRAIN, FIT, WORDS_TEST, opts(representation=representation, min_df=1,
                                                                       min_count=1))
    if representation == "tokens":
        arrays["x_test"] = arrays["x_test"] + 100
    else:
        arrays["features"] = arrays["features"][:-1]
    with pytest.raises(ValueError):
        text.unpack(arrays)


def test_option_values_checked():
    with pytest.raises(UserError, match="option representation='bag' for dataset toy: allowed: tfidf, tokens"):
        text.check_options("toy", opts(representation="bag"))
    with pytest.raises(UserError, match="option max_vocab=2 for dataset toy: must be an integer >= 3"):
        text.check_options("toy", opts(max_vocab=2))
    assert text.used_options(opts(representation="tokens")) == {"representation": "tokens", "max_len": 256,
                                                                "max_vocab": 20000, "min_count": 2}
