"""Label vocabularies: ``<lang_dir>/<factor>.txt``, one label per line, index = line order.

Vocabularies are explicit files so that corpora combine by label *name*: a new corpus adds
its unseen labels at the end of the file and existing indices never move. Tags of
``utt2tags`` use ``<lang_dir>/tags.txt`` the same way.
"""
from __future__ import annotations

from pathlib import Path
from typing import Dict, Iterable, List, Optional, Sequence, Union

from parastyle.data.datadir import DataDir
from parastyle.fileio import DataError, PathLike, c_sort_key, iter_kv, write_list

TAGS_VOCAB = "tags"


class LabelVocab(list):
    """A list of labels (index = position) that remembers the file it was read from."""

    def __init__(self, labels: Iterable[str] = (), path: Optional[PathLike] = None):
        super().__init__(labels)
        self.path = Path(path) if path is not None else None
        self._index = {label: i for i, label in enumerate(self)}

    def index_of(self, label: str) -> Optional[int]:
        """Index of ``label`` or None when it is not in the vocabulary."""
        if len(self._index) != len(self):  # the list was modified after construction
            self._index = {lab: i for i, lab in enumerate(self)}
        return self._index.get(label)

    def where(self) -> str:
        return str(self.path) if self.path is not None else "<vocabulary given in memory>"


def vocab_path(lang_dir: PathLike, factor: str) -> Path:
    """``<lang_dir>/<factor>.txt``."""
    return Path(lang_dir) / f"{factor}.txt"


def load_label_vocab(lang_dir: PathLike, factor: str) -> LabelVocab:
    """Read ``<lang_dir>/<factor>.txt``; blank, repeated or space-containing labels raise DataError."""
    path = vocab_path(lang_dir, factor)
    if not path.is_file():
        raise DataError(f"{path}: label vocabulary of factor {factor!r} not found "
                        f"(write it with parastyle.data.vocab.write_label_vocabs or the corpus preparation)")
    labels: List[str] = []
    seen: Dict[str, int] = {}
    from parastyle.fileio import iter_lines
    for n, line in iter_lines(path):
        label = line.strip()
        if not label:
            raise DataError(f"{path}:{n}: blank line (expected one label per line)")
        if len(label.split()) != 1:
            raise DataError(f"{path}:{n}: label {label!r} contains whitespace")
        if label in seen:
            raise DataError(f"{path}:{n}: label {label!r} repeated (first on line {seen[label]})")
        seen[label] = n
        labels.append(label)
    if not labels:
        raise DataError(f"{path}: empty vocabulary")
    return LabelVocab(labels, path)


def merge_label_vocabs(*vocabs: Sequence[str]) -> List[str]:
    """Union of vocabularies by label name, in first-seen order (earlier indices never move)."""
    out: List[str] = []
    seen = set()
    for vocab in vocabs:
        for label in vocab:
            if label not in seen:
                seen.add(label)
                out.append(label)
    return out


def _labels_in(data: DataDir, name: str) -> List[str]:
    """Labels used in factor ``name`` (or the tags), C-sorted and unique."""
    if name == TAGS_VOCAB:
        labels = {t for tags in (data.tags or {}).values() for t in tags}
    else:
        labels = set(data.factor(name).values())
    return sorted(labels, key=c_sort_key)


def write_label_vocabs(data_dir: Union[PathLike, DataDir], lang_dir: PathLike,
                       factors: Optional[Sequence[str]] = None, tags: bool = True) -> Dict[str, LabelVocab]:
    """Write or extend ``<lang_dir>/<factor>.txt`` for every factor of ``data_dir``.

    An existing vocabulary keeps its order; labels of the data directory it lacks are appended
    in C order. A new vocabulary lists the labels in C order. With ``tags`` and a ``utt2tags``
    file, ``tags.txt`` is written the same way. Returns ``name -> LabelVocab``.
    """
    data = data_dir if isinstance(data_dir, DataDir) else DataDir(data_dir)
    names = list(factors) if factors is not None else data.factor_names
    if tags and data.has("utt2tags"):
        names.append(TAGS_VOCAB)
    out: Dict[str, LabelVocab] = {}
    for name in names:
        path = vocab_path(lang_dir, name)
        old = load_label_vocab(lang_dir, name) if path.is_file() else []
        labels = merge_label_vocabs(old, _labels_in(data, name))
        if list(old) != labels:
            write_list(path, labels)
        out[name] = LabelVocab(labels, path)
    return out


def encode_labels(data_dir: Union[PathLike, DataDir], factor: str, vocab: Sequence[str]) -> Dict[str, int]:
    """Map ``utt -> label index`` for factor ``factor`` using ``vocab`` (index = position).

    Utterances without a line in ``utt2<factor>`` are absent from the result (unknown label).
    A label not in ``vocab`` raises DataError naming the file, line, utterance, label and
    the vocabulary file.
    """
    data = data_dir if isinstance(data_dir, DataDir) else DataDir(data_dir)
    vocab = vocab if isinstance(vocab, LabelVocab) else LabelVocab(vocab)
    path = data.path / f"utt2{factor}"
    if not path.is_file():
        raise DataError(f"{path}: no such factor file (factors here: {', '.join(data.factor_names) or 'none'})")
    utts = set(data.utt2spk)
    out: Dict[str, int] = {}
    for n, utt, label in iter_kv(path):
        if utt not in utts:
            raise DataError(f"{path}:{n}: utterance {utt!r} is not in {data.path / 'utt2spk'}")
        idx = vocab.index_of(label)
        if idx is None:
            raise DataError(f"{path}:{n}: utterance {utt!r} has {factor} label {label!r} which is not in the "
                            f"vocabulary {vocab.where()} ({len(vocab)} labels: {', '.join(vocab[:10])}"
                            f"{', ...' if len(vocab) > 10 else ''}); add it there or fix the label")
        out[utt] = idx
    return out


def encode_tags(data_dir: Union[PathLike, DataDir], vocab: Sequence[str]) -> Dict[str, List[int]]:
    """Map ``utt -> [tag indices]`` from ``utt2tags``; an unknown tag raises DataError like
    :func:`encode_labels`."""
    data = data_dir if isinstance(data_dir, DataDir) else DataDir(data_dir)
    vocab = vocab if isinstance(vocab, LabelVocab) else LabelVocab(vocab)
    path = data.path / "utt2tags"
    if not path.is_file():
        raise DataError(f"{path}: file not found")
    out: Dict[str, List[int]] = {}
    for n, utt, value in iter_kv(path):
        ids = []
        for tag in value.split():
            idx = vocab.index_of(tag)
            if idx is None:
                raise DataError(f"{path}:{n}: utterance {utt!r} has tag {tag!r} which is not in the "
                                f"vocabulary {vocab.where()}")
            ids.append(idx)
        out[utt] = ids
    return out
