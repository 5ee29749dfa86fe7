"""Reuters-21578 topic classification (ModApte split) from the original ``reuters21578.tar.gz``.

Four datasets share the tarball (and the cache folder ``reuters21578``):

============== ============ ======== ============================================== ================
name           labels       classes  documents (ModApte train / test)               on the tarball
============== ============ ======== ============================================== ================
reuters-r8     single-label 8        exactly one topic, one of R8                   5,485 / 2,189
reuters-r52    single-label 52       exactly one topic, one of R52                  6,532 / 2,568
reuters-r10    multi-label  10       at least one of the 10 most frequent topics    6,490 / 2,545
reuters-apte90 multi-label  90       at least one of the 90 ApteMod categories      7,770 / 3,019
============== ============ ======== ============================================== ================

The parts: ``sgml.py`` reads the documents and their text (entities, encoding), ``topics.py`` holds the
ModApte split and the class lists (and why each is what it is), ``nas_lth.data.text`` vectorises.

**Representations** (option ``representation``, see :mod:`nas_lth.data.text`), both fitted on the
training part only, i.e. the training split minus the validation hold-out: ``tfidf`` (default; with
seed 0, 11,255 terms pass ``min_df=2`` on R8 and 14,393 on ApteMod-90, of which the 10,000 most frequent
are kept; dense float32 (N, features) after loading, ~300-430 MB) or ``tokens`` (int64 (N, 256) ids).

Options (``dataset_options``; the reference, ``python -m nas_lth.reference``, lists them from here):
    representation: ``tfidf`` (a TF-IDF bag of words, for ``bow_mlp``) or ``tokens`` (padded token ids, for
        ``textcnn``)
    max_features: tfidf: the most frequent training terms kept as features
    min_df: tfidf: training documents a term must occur in
    max_len: tokens: tokens kept per document (shorter ones are padded with id 0)
    max_vocab: tokens: vocabulary size, ids 0 (padding) and 1 (unknown) included
    min_count: tokens: times a token must occur in the training texts to get an id

**Validation hold-out**: 10 % of the (filtered) training documents, rounded down, chosen by the seed
as for images (R8: 548 of 5,485).

**Cache.** The vectorised arrays are stored as ``<cache>/reuters21578/<dataset>-<representation>-<key>.npz``
(``<cache>`` = ``$NAS_LTH_CACHE`` or ``~/.cache/nas_lth``; see :mod:`nas_lth.data.cache`) where ``key``
hashes the tarball's SHA-256, the dataset, the options that matter for the representation, the seed and
the validation size; TF-IDF is stored sparse. Files are written to a temporary name and renamed; a file
that cannot be read or does not match its key is reported on stderr and rebuilt. An unwritable cache
only costs speed.

**Checksum.** ``SHA256`` is the digest stated for the copy in /work/shared/data/reuters21578 (taken to
be the file at the canonical kdd.ics.uci.edu URL); ``GUNZIPPED_SHA256`` was computed here from that
copy. Neither URL could be fetched from this machine (no internet), and two facts suggest the copy is
not byte-identical to what the servers send: it looks re-packed (gzip header time 0, every member owned
by 0/0 and dated 1997-01-01 00:00), and scikit-learn's out-of-core classification example records
a different SHA-256, 3bae43c9...9f9d30, for the archive.ics.uci.edu file. If a download fails its
checksum, the error names the digest received; the SGML content is what matters, and the sizes
above are the check on it (tests/test_reuters.py).
"""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from pathlib import Path
from typing import Any

import numpy as np

from ...errors import DataError
from .. import text
from ..cache import cache_dir, cache_key, load_arrays, save_arrays
from ..fetch import sha256_file
from ..registry import DATASETS, FileSpec, LoadContext, RawData, register
from .sgml import SGML_FILES, Document, decode_entities, parse_sgml, read_tarball
from .topics import APTE90, R8, R10, R52, modapte, select

__all__ = [
    "APTE90", "DEFAULT_OPTIONS", "FILES", "R8", "R10", "R52", "SGML_FILES", "SHA256", "TARBALL", "Document",
    "decode_entities", "modapte", "parse_sgml", "read_tarball", "select",
]

TARBALL = "reuters21578.tar.gz"
FOLDER = "reuters21578"
SHA256 = "8c1cdac65cea362648813cd37f519ea15b03862a5c0c5f0c2b6d2f80d0397a88"
GUNZIPPED_SHA256 = "fadbb65395a42d254850f46aeba55ea0b9a0ff140cd52327cb3154ff6eb32200"
URLS = (
    "https://kdd.ics.uci.edu/databases/reuters21578/reuters21578.tar.gz",
    "https://archive.ics.uci.edu/ml/machine-learning-databases/reuters21578-mld/reuters21578.tar.gz",
)
# The UCI archive mirror serves a different packing of the same distribution; its digest as recorded
# by scikit-learn's examples/applications/plot_out_of_core_classification.py:
UCI_ARCHIVE_SHA256 = "3bae43c9b14e387f76a61b6d82bf98a4fb5d3ef99ef7e7075ff2ccbcf59f9d30"
FILES = (FileSpec(TARBALL, URLS, SHA256, GUNZIPPED_SHA256, alt_sha256=(UCI_ARCHIVE_SHA256,)),)

DEFAULT_OPTIONS: dict[str, Any] = dict(text.DEFAULT_OPTIONS)
VAL_FRACTION = 0.1
CACHE_VERSION = 1  # bump when parsing, selection or vectorising changes what a cache file holds


# ---------------------------------------------------------------- cache


_sha_memo: dict[tuple[str, int, int], str] = {}


def _tarball_sha(path: Path) -> str:
    st = path.stat()
    key = (str(path.resolve()), st.st_size, st.st_mtime_ns)
    if key not in _sha_memo:
        _sha_memo[key] = sha256_file(path)
    return _sha_memo[key]


def _cache_file(ctx: LoadContext, tarball_sha: str, classes: Sequence[str]) -> tuple[Path, str]:
    rep = ctx.options["representation"]
    spec = DATASETS[ctx.name]
    key, digest = cache_key(
        {
            "version": CACHE_VERSION,
            "tarball_sha256": tarball_sha,
            "dataset": ctx.name,
            "classes": list(classes),
            "representation": rep,
            "options": {k: ctx.options[k] for k in text.OPTIONS[rep]},
            "seed": ctx.seed,
            "val_size": ctx.val_size if ctx.val_size is not None else f"default {spec.val_size}",
        }
    )
    return cache_dir(spec.folder) / f"{ctx.name}-{rep}-{digest}.npz", key


def _raw(arrays: Mapping[str, np.ndarray]) -> RawData:
    """RawData from cached or fresh arrays; raises ValueError/KeyError on inconsistent ones."""
    y_train, y_test = arrays["y_train"], arrays["y_test"]
    meta: dict[str, Any] = {"fit_rows": int(arrays["fit_rows"])}
    x_train, x_test, text_meta, input_shape = text.unpack(arrays)
    meta.update(text_meta)
    if y_train.shape[0] != x_train.shape[0] or y_test.shape[0] != x_test.shape[0]:
        raise ValueError("labels and inputs disagree in number")
    return RawData(x_train, y_train, x_test, y_test, meta, input_shape=input_shape)


# ---------------------------------------------------------------- loader


def _build(path: Path, ctx: LoadContext, classes: Sequence[str], multilabel: bool) -> dict[str, np.ndarray]:
    """Parse the tarball, select the dataset's documents and vectorise them: the arrays to cache."""
    train_docs, test_docs = modapte(read_tarball(path))
    train_docs, y_train = select(train_docs, classes, multilabel)
    test_docs, y_test = select(test_docs, classes, multilabel)
    if not train_docs:
        raise DataError(f"{path}: no ModApte training document has a topic of {ctx.name}")
    _, fit_idx = ctx.holdout(len(train_docs))  # the vectorizer sees the training part only
    arrays = text.vectorize(ctx.name, [d.text for d in train_docs], fit_idx, [d.text for d in test_docs],
                            ctx.options)
    arrays.update(y_train=y_train, y_test=y_test, fit_rows=np.array(len(fit_idx)))
    return arrays


def _load(paths: dict[str, Path], ctx: LoadContext, classes: Sequence[str], multilabel: bool) -> RawData:
    text.check_options(ctx.name, ctx.options)
    path = paths[TARBALL]
    cache_path, key = _cache_file(ctx, _tarball_sha(path), classes)
    raw = load_arrays(cache_path, key, _raw)  # _raw validates shapes and the sparse structure
    hit = raw is not None
    if raw is None:
        arrays = _build(path, ctx, classes, multilabel)
        save_arrays(cache_path, key, arrays, on_failure="the next load parses the tarball again")
        raw = _raw(arrays)
    raw.meta.update(classes=list(classes), options=text.used_options(ctx.options), cache=str(cache_path),
                    cache_hit=hit)
    return raw


_COMMON = dict(
    input_shape=(DEFAULT_OPTIONS["max_features"],),
    val_size=VAL_FRACTION,
    files=FILES,
    folder=FOLDER,
    standardize=False,
    options=DEFAULT_OPTIONS,
)


@register("reuters-r8", num_classes=len(R8), description="Reuters-21578 R8: ModApte, single-label, 8 topics "
          "(5,485 train / 2,189 test)", **_COMMON)
def load_r8(paths: dict[str, Path], ctx: LoadContext) -> RawData:
    return _load(paths, ctx, R8, multilabel=False)


@register("reuters-r52", num_classes=len(R52), description="Reuters-21578 R52: ModApte, single-label, 52 topics "
          "(6,532 train / 2,568 test)", **_COMMON)
def load_r52(paths: dict[str, Path], ctx: LoadContext) -> RawData:
    return _load(paths, ctx, R52, multilabel=False)


@register("reuters-r10", num_classes=len(R10), multilabel=True, description="Reuters-21578 R10: ModApte, "
          "multi-label, the 10 most frequent topics (6,490 train / 2,545 test)", **_COMMON)
def load_r10(paths: dict[str, Path], ctx: LoadContext) -> RawData:
    return _load(paths, ctx, R10, multilabel=True)


@register("reuters-apte90", num_classes=len(APTE90), multilabel=True, description="Reuters-21578 ApteMod: "
          "ModApte, multi-label, 90 topics (7,770 train / 3,019 test)", **_COMMON)
def load_apte90(paths: dict[str, Path], ctx: LoadContext) -> RawData:
    return _load(paths, ctx, APTE90, multilabel=True)
