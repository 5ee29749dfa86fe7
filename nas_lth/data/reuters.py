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

**Split.** ModApte (the distribution's README, section VIII.B): ``LEWISSPLIT="TRAIN"`` and
``TOPICS="YES"`` is training (9,603 documents), ``LEWISSPLIT="TEST"`` and ``TOPICS="YES"`` is test
(3,299). The ``TOPICS`` *attribute* only defines the split; a document's labels are the ``<D>`` entries
of its ``<TOPICS>`` element.

**Class lists** (fixed here, so class ids never depend on the data; each was derived from the real
tarball by the rule below and is re-derived and compared by ``tests/test_reuters.py``):

* R8 and R52 (Cardoso-Cachopo 2007): ModApte documents whose ``<TOPICS>`` element has exactly one
  ``<D>`` entry; R52 = the 52 topics with at least one such training and one such test document,
  R8 = acq, crude, earn, grain, interest, money-fx, ship, trade. These reproduce the published sizes
  exactly (R8 5,485 / 2,189; R52 6,532 / 2,568). "Exactly one entry" is taken literally: test
  document NEWID 19918 lists ``trade`` twice and is left out, as in the published sets (counting
  distinct topics instead would add it and give 2,190 / 2,569).
* R10: the 10 topics with the most ModApte training documents (earn, acq, money-fx, grain, crude,
  trade, interest, wheat, ship, corn; ranking by train + test gives the same set).
* ApteMod-90 (Yang & Liu 1999; NLTK's ``reuters`` corpus): the 90 topics with at least one training
  and one test document. We get 7,770 training documents where the published figure is 7,769: the
  one difference is NEWID 1199 (topic ``trade``, a title without body), the only ModApte training
  document with a topic whose ``<REUTERS>`` tag carries the optional sixth attribute ``CSECS``. It
  is absent from NLTK's ApteMod ``cats.txt`` (which lists training/1197, 1198, 1200), apparently
  lost by the parser that built ApteMod; it is a valid ModApte document, so we keep it.

Multi-label datasets label a document with every listed topic among their classes (others are
ignored) as float32 multi-hot rows (N, C).

**Text** = ``<TITLE>`` and ``<BODY>`` joined by a newline. Documents without a body (1,131 in ModApte;
``TYPE="BRIEF"`` ones say "Blah blah blah." outside the body) use the title alone; the few with
neither (``TYPE="UNPROC"`` tables) use the whole ``<TEXT>`` element with its tags removed.
Entities: ``&lt;`` ``&gt;`` ``&amp;`` (and ``&quot;`` ``&apos;``) are decoded; the control-character
entities ``&#1;``...``&#31;`` and ``&#127;`` become a space, except the two ANSI escape sequences
``&#27;[B`` that split a word ("Semiconducto&#27;[Br") and are removed whole.

**Encoding.** The files are 7-bit ASCII except one byte, 0xFC in ``reut2-017.sgm``, inside line
noise ("growth.\\xfc&#5;&#30;side"); it is not valid UTF-8. We decode as latin-1, the faithful choice:
it maps each byte to the code point of the same value, so decoding never fails and loses nothing
(the byte reads back as "ü"), while ``errors="replace"`` would overwrite it with U+FFFD. The corpus
(1987 stories, distributed 1997) predates common UTF-8 use: it is single-byte text, and read as such.

**Representations** (option ``representation``), both fitted on the training part only, i.e. the
training split minus the validation hold-out:

* ``tfidf`` (default, for an MLP): scikit-learn ``TfidfVectorizer`` with ``sublinear_tf=True`` (1 +
  log tf: long documents do not dominate), ``min_df`` (default 2: a word must occur in two training
  documents) and ``max_features`` (default 10,000 most frequent terms; with seed 0, 11,255 terms
  pass ``min_df=2`` on R8 and 14,393 on ApteMod-90), lowercase, tokens of 2+ word characters,
  l2-normalised rows; no stop list (IDF down-weights common words). Dense float32 (N, features),
  ~300-430 MB for the defaults; ``meta["features"]``.
* ``tokens`` (for a text CNN): lowercase ``\\w+`` tokens; vocabulary = training-part tokens seen at
  least ``min_count`` (2) times, most frequent first (ties alphabetical), at most ``max_vocab``
  (20,000) ids including 0 = padding and 1 = unknown; each document keeps its first ``max_len`` (256)
  tokens, padded with 0 at the end. int64 (N, max_len); ``meta["vocab"]`` (id -> token) and
  ``meta["vocab_size"]``.

**Validation hold-out**: 10 % of the (filtered) training documents, rounded down, chosen by the seed
as for images (R8: 548 of 5,485).

**Cache.** The vectorised arrays are stored as ``<cache>/reuters21578/<dataset>-<representation>-<key>.npz``
(``<cache>`` = ``$NAS_LTH_CACHE`` or ``~/.cache/nas_lth``) where ``key`` hashes the tarball's SHA-256,
the dataset, the options that matter for the representation, the seed and the validation size; TF-IDF
is stored sparse. Files are written to a temporary name and renamed; a file that cannot be read or does
not match its key is reported on stderr and rebuilt. An unwritable cache only costs speed.

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

import hashlib
import json
import os
import re
import sys
import tarfile
import tempfile
import zlib
from collections import Counter
from collections.abc import Mapping, Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import numpy as np

from ..errors import DataError, UserError
from .fetch import cache_dir, sha256_file
from .registry import DATASETS, FileSpec, LoadContext, RawData, register

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
SGML_FILES = tuple(f"reut2-{i:03d}.sgm" for i in range(22))

R8 = ("acq", "crude", "earn", "grain", "interest", "money-fx", "ship", "trade")
R52 = tuple(
    "acq alum bop carcass cocoa coffee copper cotton cpi cpu crude dlr earn fuel gas gnp gold grain heat housing "
    "income instal-debt interest ipi iron-steel jet jobs lead lei livestock lumber meal-feed money-fx money-supply "
    "nat-gas nickel orange pet-chem platinum potato reserves retail rubber ship strategic-metal sugar tea tin trade "
    "veg-oil wpi zinc".split()
)
R10 = ("acq", "corn", "crude", "earn", "grain", "interest", "money-fx", "ship", "trade", "wheat")
APTE90 = tuple(
    "acq alum barley bop carcass castor-oil cocoa coconut coconut-oil coffee copper copra-cake corn cotton "
    "cotton-oil cpi cpu crude dfl dlr dmk earn fuel gas gnp gold grain groundnut groundnut-oil heat hog housing "
    "income instal-debt interest ipi iron-steel jet jobs l-cattle lead lei lin-oil livestock lumber meal-feed "
    "money-fx money-supply naphtha nat-gas nickel nkr nzdlr oat oilseed orange palladium palm-oil palmkernel "
    "pet-chem platinum potato propane rand rape-oil rapeseed reserves retail rice rubber rye ship silver sorghum "
    "soy-meal soy-oil soybean strategic-metal sugar sun-meal sun-oil sunseed tea tin trade veg-oil wheat wpi yen "
    "zinc".split()
)

DEFAULT_OPTIONS: dict[str, Any] = {
    "representation": "tfidf",
    "max_features": 10000,  # tfidf
    "min_df": 2,  # tfidf
    "max_len": 256,  # tokens
    "max_vocab": 20000,  # tokens (ids 0 and 1 included)
    "min_count": 2,  # tokens
}
REPRESENTATION_OPTIONS = {"tfidf": ("max_features", "min_df"), "tokens": ("max_len", "max_vocab", "min_count")}
VAL_FRACTION = 0.1
PAD, UNK = "<pad>", "<unk>"  # ids 0 and 1; \w+ tokens can never look like these
CACHE_VERSION = 1  # bump when parsing, selection or vectorising changes what a cache file holds


# ---------------------------------------------------------------- SGML


@dataclass(frozen=True)
class Document:
    newid: int
    lewissplit: str  # TRAIN, TEST or NOT-USED
    topics_attr: str  # the TOPICS attribute: YES, NO or BYPASS (defines the split, not the labels)
    topics: tuple[str, ...]  # the <D> entries of <TOPICS>, in file order (one document repeats one)
    title: str | None  # decoded; None when the element is absent
    body: str | None
    text: str  # what the vectorizers read (see the module docstring)


_DOC = re.compile(r"<REUTERS\b([^>]*)>(.*?)</REUTERS>", re.S)
_OPEN = re.compile(r"<REUTERS\b")
_ATTR = re.compile(r'([A-Za-z]+)="([^"]*)"')
_TOPICS = re.compile(r"<TOPICS>(.*?)</TOPICS>", re.S)
_D = re.compile(r"<D>(.*?)</D>", re.S)
_TITLE = re.compile(r"<TITLE>(.*?)</TITLE>", re.S)
_BODY = re.compile(r"<BODY>(.*?)</BODY>", re.S)
_TEXT = re.compile(r"<TEXT\b[^>]*>(.*?)</TEXT>", re.S)
_TAG = re.compile(r"</?[A-Za-z]+\b[^>]*>")
_ANSI = re.compile(r"&#27;\[[0-9;]*[A-Za-z]")  # an escape sequence written as entities: ESC [ ... letter
_ENTITY = re.compile(r"&(?:#([0-9]+)|(lt|gt|amp|quot|apos));")
_NAMED = {"lt": "<", "gt": ">", "amp": "&", "quot": '"', "apos": "'"}
_CONTROL = re.compile(r"[\x00-\x08\x0b\x0c\x0e-\x1f\x7f]")  # raw control characters (none in the files)


def _entity(m: re.Match) -> str:
    if m.group(2):
        return _NAMED[m.group(2)]
    code = int(m.group(1))
    if code < 32 or code == 127:
        return " "  # control characters are transmission codes, not text
    return chr(code) if code < 0x110000 else m.group(0)


def decode_entities(s: str) -> str:
    """SGML text -> plain text: entities decoded in one pass (so ``&amp;lt;`` stays ``&lt;``),
    control characters replaced by spaces, ANSI escape sequences removed."""
    return _CONTROL.sub(" ", _ENTITY.sub(_entity, _ANSI.sub("", s)))


def parse_sgml(text: str, source: str) -> list[Document]:
    """All ``<REUTERS>`` elements of one ``reut2-NNN.sgm`` file (decoded text); ``source`` names the file
    in errors."""
    docs = []
    for m in _DOC.finditer(text):
        attrs = dict(_ATTR.findall(m.group(1)))
        missing = [a for a in ("NEWID", "LEWISSPLIT", "TOPICS") if a not in attrs]
        if missing or not attrs.get("NEWID", "").isdigit():
            raise DataError(
                f"{source}: <REUTERS{m.group(1)}> (element {len(docs) + 1}) lacks "
                f"{'attribute ' + ', '.join(missing) if missing else 'a numeric NEWID'}; not Reuters-21578 SGML?"
            )
        inner = m.group(2)
        topics_el = _TOPICS.search(inner)
        topics = tuple(t.strip() for t in _D.findall(topics_el.group(1))) if topics_el else ()
        title_m, body_m = _TITLE.search(inner), _BODY.search(inner)
        title = decode_entities(title_m.group(1)).strip() if title_m else None
        body = decode_entities(body_m.group(1)).strip() if body_m else None
        if title is None and body is None:  # TYPE="UNPROC": the whole text element, tags removed
            text_m = _TEXT.search(inner)
            text_s = decode_entities(_TAG.sub(" ", text_m.group(1))).strip() if text_m else ""
        else:
            text_s = "\n".join(p for p in (title, body) if p)
        docs.append(
            Document(int(attrs["NEWID"]), attrs["LEWISSPLIT"], attrs["TOPICS"], topics, title, body, text_s)
        )
    opened = len(_OPEN.findall(text))
    if opened != len(docs):
        raise DataError(
            f"{source}: {opened} <REUTERS> start tags but {len(docs)} complete elements; the file is truncated "
            "or not Reuters-21578 SGML"
        )
    return docs


def read_tarball(path: Path) -> list[Document]:
    """Every document of the 22 ``reut2-NNN.sgm`` files, read straight from the tarball, in file order."""
    wanted = set(SGML_FILES)
    found: dict[str, bytes] = {}
    try:
        with tarfile.open(path, "r:gz") as tar:
            for member in tar:
                base = member.name.rsplit("/", 1)[-1]
                if base in wanted and member.isfile() and base not in found:
                    fh = tar.extractfile(member)
                    if fh is not None:
                        found[base] = fh.read()
    except (tarfile.TarError, OSError, EOFError, zlib.error) as exc:
        raise DataError(f"{path}: corrupt or not a gzip tarball ({exc}); delete it to re-download") from None
    missing = [n for n in SGML_FILES if n not in found]
    if missing:
        shown = ", ".join(missing[:3]) + (", ..." if len(missing) > 3 else "")
        raise DataError(
            f"{path}: tarball lacks {len(missing)} of the 22 files reut2-000.sgm..reut2-021.sgm ({shown}); "
            "not the Reuters-21578 distribution?"
        )
    docs: list[Document] = []
    for name in SGML_FILES:
        docs += parse_sgml(found[name].decode("latin-1"), f"{path}:{name}")  # latin-1: see module docstring
    return docs


def modapte(docs: Sequence[Document]) -> tuple[list[Document], list[Document]]:
    """The ModApte training and test documents (before any topic filter)."""
    train = [d for d in docs if d.topics_attr == "YES" and d.lewissplit == "TRAIN"]
    test = [d for d in docs if d.topics_attr == "YES" and d.lewissplit == "TEST"]
    return train, test


def select(docs: Sequence[Document], classes: Sequence[str], multilabel: bool) -> tuple[list[Document], np.ndarray]:
    """Documents of a dataset and their labels: single-label keeps documents with exactly one topic
    entry that is one of ``classes`` (int64 ids); multi-label keeps documents with at least one of
    them (float32 multi-hot over ``classes``)."""
    index = {c: i for i, c in enumerate(classes)}
    if not multilabel:
        keep = [d for d in docs if len(d.topics) == 1 and d.topics[0] in index]
        return keep, np.array([index[d.topics[0]] for d in keep], dtype=np.int64)
    keep = [d for d in docs if any(t in index for t in d.topics)]
    y = np.zeros((len(keep), len(classes)), dtype=np.float32)
    for row, d in enumerate(keep):
        y[row, [index[t] for t in d.topics if t in index]] = 1.0
    return keep, y


# ---------------------------------------------------------------- vectorizers

_WORD = re.compile(r"\w+")


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


def _vectorize(
    name: str, train_texts: list[str], fit_idx: np.ndarray, test_texts: list[str], opts: Mapping[str, Any]
) -> dict[str, np.ndarray]:
    if opts["representation"] == "tokens":
        train_tokens = [tokenize(t) for t in train_texts]
        vocab = build_vocab([train_tokens[i] for i in fit_idx], opts["max_vocab"], opts["min_count"])
        return {  # int32 on disk (ids < max_vocab), int64 in memory
            "x_train": encode(train_tokens, vocab, opts["max_len"]).astype(np.int32),
            "x_test": encode([tokenize(t) for t in test_texts], vocab, opts["max_len"]).astype(np.int32),
            "vocab": np.array(vocab, dtype=str),
        }
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
        x.sort_indices()
        out.update({f"{part}_data": x.data, f"{part}_indices": x.indices, f"{part}_indptr": x.indptr,
                    f"{part}_shape": np.array(x.shape, dtype=np.int64)})
    return out


# ---------------------------------------------------------------- options, cache, loader


def _check_values(name: str, opts: Mapping[str, Any]) -> None:
    rep = opts["representation"]
    if rep not in REPRESENTATION_OPTIONS:
        raise UserError(
            f"option representation={rep!r} for dataset {name}: allowed: {', '.join(REPRESENTATION_OPTIONS)}"
        )
    minimum = {"max_features": 1, "min_df": 1, "max_len": 1, "max_vocab": 3, "min_count": 1}
    for key, low in minimum.items():
        if opts[key] < low:
            raise UserError(f"option {key}={opts[key]!r} for dataset {name}: must be an integer >= {low}")


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
    key = json.dumps(
        {
            "version": CACHE_VERSION,
            "tarball_sha256": tarball_sha,
            "dataset": ctx.name,
            "classes": list(classes),
            "representation": rep,
            "options": {k: ctx.options[k] for k in REPRESENTATION_OPTIONS[rep]},
            "seed": ctx.seed,
            "val_size": ctx.val_size if ctx.val_size is not None else f"default {spec.val_size}",
        },
        sort_keys=True,
    )
    digest = hashlib.sha256(key.encode()).hexdigest()[:20]
    return cache_dir(spec) / f"{ctx.name}-{rep}-{digest}.npz", key


def _read_cache(path: Path, key: str) -> RawData | None:
    if not path.is_file():
        return None
    try:
        with np.load(path, allow_pickle=False) as z:
            arrays = {k: z[k] for k in z.files}
        if str(arrays.pop("key")) != key:
            raise ValueError("written for other inputs")
        return _raw(arrays)  # validates shapes and the sparse structure
    except Exception as exc:  # noqa: BLE001 - any unreadable cache is rebuilt, whatever broke it
        print(f"warning: ignoring unreadable cache file {path} ({type(exc).__name__}: {exc}); rebuilding",
              file=sys.stderr)
        return None


def _write_cache(path: Path, key: str, arrays: dict[str, np.ndarray]) -> None:
    tmp: Path | None = None
    try:
        path.parent.mkdir(parents=True, exist_ok=True)
        fd, tmp_name = tempfile.mkstemp(prefix=f".{path.stem}.", suffix=".npz.part", dir=path.parent)
        tmp = Path(tmp_name)
        with os.fdopen(fd, "wb") as fh:
            np.savez(fh, key=np.array(key), **arrays)
        os.replace(tmp, path)  # atomic: readers see the old file or the whole new one
        tmp = None
    except OSError as exc:
        print(f"warning: cannot write the cache file {path} ({exc.strerror or exc}); the next load parses "
              "the tarball again", file=sys.stderr)
    finally:
        if tmp is not None:
            tmp.unlink(missing_ok=True)


def _raw(arrays: Mapping[str, np.ndarray]) -> RawData:
    """RawData from cached or fresh arrays; raises ValueError/KeyError on inconsistent ones."""
    y_train, y_test = arrays["y_train"], arrays["y_test"]
    meta: dict[str, Any] = {"fit_rows": int(arrays["fit_rows"])}
    if "vocab" in arrays:
        vocab = [str(t) for t in arrays["vocab"]]
        x_train, x_test = (arrays[k].astype(np.int64) for k in ("x_train", "x_test"))
        if x_train.ndim != 2 or x_test.shape[1:] != x_train.shape[1:] or vocab[:2] != [PAD, UNK]:
            raise ValueError("token arrays of inconsistent shapes")
        for x in (x_train, x_test):
            if x.size and (x.min() < 0 or x.max() >= len(vocab)):
                raise ValueError("token ids outside the vocabulary")
        meta.update(representation="tokens", vocab=vocab, vocab_size=len(vocab))
        input_shape: tuple[int, ...] = (x_train.shape[1],)
    else:
        from scipy.sparse import csr_matrix

        features = [str(t) for t in arrays["features"]]
        xs = []
        for part in ("x_train", "x_test"):
            shape = tuple(int(v) for v in arrays[f"{part}_shape"])
            x = csr_matrix((arrays[f"{part}_data"], arrays[f"{part}_indices"], arrays[f"{part}_indptr"]),
                           shape=shape)
            x.check_format(full_check=True)
            if shape[1] != len(features) or x.dtype != np.float32:
                raise ValueError("TF-IDF matrix does not match its feature list")
            xs.append(x)
        x_train, x_test = xs
        meta.update(representation="tfidf", features=features)
        input_shape = (len(features),)
    if y_train.shape[0] != x_train.shape[0] or y_test.shape[0] != x_test.shape[0]:
        raise ValueError("labels and inputs disagree in number")
    return RawData(x_train, y_train, x_test, y_test, meta, input_shape=input_shape)


def _load(paths: dict[str, Path], ctx: LoadContext, classes: Sequence[str], multilabel: bool) -> RawData:
    _check_values(ctx.name, ctx.options)
    path = paths[TARBALL]
    cache_path, key = _cache_file(ctx, _tarball_sha(path), classes)
    raw = _read_cache(cache_path, key)
    hit = raw is not None
    if raw is None:
        train_docs, test_docs = modapte(read_tarball(path))
        train_docs, y_train = select(train_docs, classes, multilabel)
        test_docs, y_test = select(test_docs, classes, multilabel)
        if not train_docs:
            raise DataError(f"{path}: no ModApte training document has a topic of {ctx.name}")
        _, fit_idx = ctx.holdout(len(train_docs))  # the vectorizer sees the training part only
        arrays = _vectorize(ctx.name, [d.text for d in train_docs], fit_idx, [d.text for d in test_docs],
                            ctx.options)
        arrays.update(y_train=y_train, y_test=y_test, fit_rows=np.array(len(fit_idx)))
        _write_cache(cache_path, key, arrays)
        raw = _raw(arrays)
    rep = ctx.options["representation"]
    used = {"representation": rep, **{k: ctx.options[k] for k in REPRESENTATION_OPTIONS[rep]}}
    raw.meta.update(classes=list(classes), options=used, cache=str(cache_path), cache_hit=hit)
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
