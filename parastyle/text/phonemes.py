"""Phonemes through espeak-ng (the ``phonemizer`` package, espeak backend) and phone vocabularies.

A phone sequence is a list of symbols: an optional language tag ``<en>`` first, then IPA phones
(espeak-ng's multi-character phones such as ``eɪ`` or ``ts`` are one symbol) with the word
boundary ``|`` between words. Stress marks are removed; punctuation is dropped (espeak-ng
renders it as pauses the aligner absorbs). A data dir stores the sequence per utterance in
its ``phones`` table (``<utt> <sym> <sym> ...``); the recipe's ``data/lang/phones.txt`` lists the
vocabulary, one symbol per line, index = line number:

    0 <pad>   1 <blank>   2.. language tags   then | and the phones, C-sorted

``<blank>`` is interleaved between symbols (and at both ends) by :func:`intersperse` when a
model asks for it, as VITS does. Languages are the corpus labels (``en``, ``cmn``, ``de``, ``fr``,
``es``, ...) mapped to espeak-ng voices by :data:`ESPEAK_VOICES`.

espeak-ng 1.51 as shipped by Debian reads Mandarin characters through its pinyin rules and
speaks the tone digits with the English voice; the phones follow what espeak-ng actually
says, which is what the synthetic corpus's audio contains (its wavs are rendered by the same
espeak-ng).
"""
from __future__ import annotations

import functools
import re
from pathlib import Path
from typing import Dict, Iterable, List, Mapping, Optional, Sequence

from parastyle.fileio import DataError

PAD = "<pad>"
BLANK = "<blank>"
WORD = "|"
#: Corpus language label -> espeak-ng voice (aliases accepted by :func:`espeak_voice`).
ESPEAK_VOICES: Dict[str, str] = {
    "en": "en-us", "en-us": "en-us", "en-gb": "en-gb", "cmn": "cmn", "zh": "cmn", "de": "de",
    "fr": "fr-fr", "fr-fr": "fr-fr", "es": "es", "it": "it", "pt": "pt", "ru": "ru", "ja": "ja",
    "nl": "nl", "pl": "pl", "yue": "yue",
    # corpus label spellings (ESD / ParaMETA's label set: chinese, english)
    "english": "en-us", "chinese": "cmn", "mandarin": "cmn", "german": "de", "french": "fr-fr", "spanish": "es",
}
_FLAG = re.compile(r"\([a-z\-]+\)")


class PhonemeError(DataError):
    """Empty text, unsupported language or unknown phone; the message names the utterance."""


def lang_tag(lang: str) -> str:
    return f"<{lang}>"


def espeak_voice(lang: str, utt: str = "") -> str:
    where = f"utterance {utt!r}: " if utt else ""
    voice = ESPEAK_VOICES.get(lang)
    if voice is None:
        raise PhonemeError(f"{where}language {lang!r} is not supported by the phoneme front-end "
                           f"(supported: {', '.join(sorted(ESPEAK_VOICES))})")
    return voice


@functools.lru_cache(maxsize=None)
def _backend(voice: str):
    try:
        from phonemizer.backend import EspeakBackend
    except ImportError as e:  # pragma: no cover - dependency listed in requirements
        raise PhonemeError("the phoneme front-end needs the 'phonemizer' package and espeak-ng "
                           "(pip install phonemizer; apt-get install espeak-ng)") from e
    return EspeakBackend(voice, preserve_punctuation=False, with_stress=False, tie=False,
                         language_switch="remove-flags")


def phonemize(texts: Sequence[str], langs: Sequence[str], utts: Optional[Sequence[str]] = None,
              tag_language: bool = True) -> List[List[str]]:
    """Phone sequences of ``texts`` (one language label per text).

    Texts of one language go through espeak-ng in one call. Raises :class:`PhonemeError`
    naming the utterance for an empty text, an unsupported language or a text espeak-ng turns
    into no phone.
    """
    if len(texts) != len(langs):
        raise ValueError(f"{len(texts)} texts but {len(langs)} languages")
    utts = list(utts) if utts is not None else [f"#{i}" for i in range(len(texts))]
    from phonemizer.separator import Separator
    sep = Separator(phone=" ", word=f" {WORD} ", syllable=None)
    by_voice: Dict[str, List[int]] = {}
    for i, (t, lang) in enumerate(zip(texts, langs)):
        if not t or not t.strip():
            raise PhonemeError(f"utterance {utts[i]!r}: empty text")
        by_voice.setdefault(espeak_voice(lang, utts[i]), []).append(i)
    out: List[Optional[List[str]]] = [None] * len(texts)
    for voice, idx in by_voice.items():
        raw = _backend(voice).phonemize([texts[i] for i in idx], separator=sep, strip=True, njobs=1)
        for i, s in zip(idx, raw):
            syms = [p for p in _FLAG.sub(" ", s).split() if p]
            # collapse repeated / leading / trailing word boundaries
            seq: List[str] = []
            for p in syms:
                if p == WORD and (not seq or seq[-1] == WORD):
                    continue
                seq.append(p)
            while seq and seq[-1] == WORD:
                seq.pop()
            if not seq:
                raise PhonemeError(f"utterance {utts[i]!r}: espeak-ng ({voice}) produced no phone for "
                                   f"text {texts[i]!r}")
            out[i] = ([lang_tag(langs[i])] if tag_language else []) + seq
    return out  # type: ignore[return-value]


def intersperse(ids: Sequence[int], blank: int) -> List[int]:
    """``[blank, x1, blank, x2, ..., xn, blank]`` (length ``2n + 1``)."""
    out = [blank] * (2 * len(ids) + 1)
    out[1::2] = list(ids)
    return out


class PhoneVocab:
    """Symbol <-> index of a ``phones.txt``; index 0 is ``<pad>``, 1 is ``<blank>``."""

    def __init__(self, symbols: Sequence[str], path: str = "phones.txt"):
        symbols = list(symbols)
        if symbols[:2] != [PAD, BLANK]:
            raise PhonemeError(f"{path}: the first two symbols must be {PAD} and {BLANK}, got {symbols[:2]}")
        if len(set(symbols)) != len(symbols):
            dup = sorted({s for s in symbols if symbols.count(s) > 1})
            raise PhonemeError(f"{path}: duplicate symbols {dup}")
        self.symbols = symbols
        self.path = path
        self.index = {s: i for i, s in enumerate(symbols)}

    def __len__(self) -> int:
        return len(self.symbols)

    @property
    def pad(self) -> int:
        return 0

    @property
    def blank(self) -> int:
        return 1

    @classmethod
    def build(cls, sequences: Iterable[Sequence[str]]) -> "PhoneVocab":
        from parastyle.fileio import c_sort_key
        seen = set()
        for seq in sequences:
            seen.update(seq)
        seen -= {PAD, BLANK}
        tags = sorted((s for s in seen if s.startswith("<") and s.endswith(">")), key=c_sort_key)
        rest = sorted((s for s in seen if s not in tags), key=c_sort_key)
        return cls([PAD, BLANK] + tags + rest)

    @classmethod
    def read(cls, path) -> "PhoneVocab":
        from parastyle.fileio import read_list
        p = Path(path)
        if not p.is_file():
            raise PhonemeError(f"{p}: phone vocabulary not found (make it with parastyle.bin.make_phones)")
        return cls(read_list(p), str(p))

    def write(self, path) -> None:
        from parastyle.fileio import write_list
        write_list(path, self.symbols)

    def encode(self, seq: Sequence[str], utt: str = "", add_blank: bool = False) -> List[int]:
        ids = []
        for s in seq:
            i = self.index.get(s)
            if i is None or i < 2:
                raise PhonemeError(f"utterance {utt!r}: phone {s!r} is not in the vocabulary {self.path}"
                                   if i is None else f"utterance {utt!r}: reserved symbol {s!r} in a phone sequence")
            ids.append(i)
        if not ids:
            raise PhonemeError(f"utterance {utt!r}: empty phone sequence")
        return intersperse(ids, self.blank) if add_blank else ids


def read_phones(path) -> Dict[str, List[str]]:
    """``{utt: [symbols]}`` of a ``phones`` table; an utterance without a symbol is an error."""
    from parastyle.fileio import iter_kv
    out: Dict[str, List[str]] = {}
    for n, utt, value in iter_kv(path, allow_empty_value=True):
        syms = value.split()
        if not syms:
            raise PhonemeError(f"{path}:{n}: utterance {utt!r} has no phone")
        out[utt] = syms
    return out


def write_phones(path, table: Mapping[str, Sequence[str]]) -> None:
    from parastyle.fileio import write_kv
    write_kv(path, {u: " ".join(s) for u, s in table.items()})


def phonemize_data_dir(data_dir, lang: Optional[str] = None, tag_language: bool = True) -> Dict[str, List[str]]:
    """``{utt: phones}`` for every utterance of ``<data_dir>/text``; the language of an utterance is
    ``lang`` or its line of ``utt2language`` (an utterance with neither is an error naming it)."""
    from parastyle.fileio import read_kv
    d = Path(data_dir)
    text = read_kv(d / "text")
    if lang is None:
        p = d / "utt2language"
        if not p.is_file():
            raise PhonemeError(f"{p}: not found; give the language of {d} (make_phones --lang)")
        langs = read_kv(p)
        missing = [u for u in text if u not in langs]
        if missing:
            raise PhonemeError(f"{p}: {len(missing)} utterance(s) of {d}/text have no language, e.g. {missing[:3]}")
    else:
        langs = {u: lang for u in text}
    utts = list(text)
    seqs = phonemize([text[u] for u in utts], [langs[u] for u in utts], utts, tag_language=tag_language)
    return dict(zip(utts, seqs))
