"""Reading the Reuters-21578 SGML files: one :class:`Document` per ``<REUTERS>`` element.

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
"""

from __future__ import annotations

import re
import tarfile
import zlib
from dataclasses import dataclass
from pathlib import Path

from ...errors import DataError

SGML_FILES = tuple(f"reut2-{i:03d}.sgm" for i in range(22))


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
        docs.append(_document(attrs, m.group(2)))
    opened = len(_OPEN.findall(text))
    if opened != len(docs):
        raise DataError(
            f"{source}: {opened} <REUTERS> start tags but {len(docs)} complete elements; the file is truncated "
            "or not Reuters-21578 SGML"
        )
    return docs


def _document(attrs: dict[str, str], inner: str) -> Document:
    """One element from its attributes and its content."""
    topics_el = _TOPICS.search(inner)
    topics = tuple(t.strip() for t in _D.findall(topics_el.group(1))) if topics_el else ()
    title_m, body_m = _TITLE.search(inner), _BODY.search(inner)
    title = decode_entities(title_m.group(1)).strip() if title_m else None
    body = decode_entities(body_m.group(1)).strip() if body_m else None
    if title is None and body is None:  # TYPE="UNPROC": the whole text element, tags removed
        text_m = _TEXT.search(inner)
        text = decode_entities(_TAG.sub(" ", text_m.group(1))).strip() if text_m else ""
    else:
        text = "\n".join(p for p in (title, body) if p)
    return Document(int(attrs["NEWID"]), attrs["LEWISSPLIT"], attrs["TOPICS"], topics, title, body, text)


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
