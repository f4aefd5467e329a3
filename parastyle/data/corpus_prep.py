"""Writing a labelled Kaldi data directory from a corpus, with the corpus's own label vocabularies.

Every ``egs/<corpus>/style1/local/prepare_<corpus>.py`` collects :class:`Utterance` objects and
calls :func:`run_prepare` with the corpus's vocabularies (``{factor: [label, ...]}``, the labels
the corpus defines, in the corpus's order). Nothing here fixes a label set: a corpus with a
``boredom`` emotion or a ``middle_aged`` age writes those labels, and a label outside the
corpus's declared vocabulary is an error naming the utterance. Mixing corpora onto one shared
label set (ParaMETA's 7 emotions, 5 ages) is a separate, explicit step: each corpus's optional
``local/label_map.yaml`` applied by :mod:`parastyle.data.label_map`.

:func:`age_group` bins an age in years into the toolkit's age groups (ParaMETA's ranges):
    child (0-12) teenager (13-19) young_adult (20-30) adult (31-50) senior (51+)
A factor that a corpus does not annotate is left unknown: its ``utt2<factor>`` line is absent.
"""
from __future__ import annotations

import os
import re
import sys
from dataclasses import dataclass, field
from pathlib import Path
from typing import Dict, Iterable, List, Mapping, Optional, Sequence

from parastyle.fileio import DataError, write_kv, write_list

AGE_GROUPS = ["child", "teenager", "young_adult", "adult", "senior"]

# Upper bound (inclusive) of each age group in years. The paper's ranges meet at 50
# ("adult 31-50", "senior 50+"); 50 is counted as adult, seniors start at 51.
AGE_GROUP_UPPER = [("child", 12), ("teenager", 19), ("young_adult", 30), ("adult", 50)]

# Adjectives of emotion labels in captions; another label is written as "<a/an> <label> voice of ...".
_EMOTION_WORD = {"happy": "happy", "angry": "angry", "sad": "sad", "neutral": "neutral",
                 "surprise": "surprised", "disgust": "disgusted", "fear": "fearful",
                 "surprised": "surprised", "disgusted": "disgusted", "fearful": "fearful",
                 "calm": "calm", "bored": "bored", "boredom": "bored", "anxious": "anxious",
                 "excited": "excited", "frustrated": "frustrated"}
_LANGUAGE_WORD = {"chinese": "Chinese", "english": "English"}
# Noun phrase for (age, gender); None = unknown.
_PERSON = {
    ("child", "male"): "boy", ("child", "female"): "girl", ("child", None): "child",
    ("teenager", "male"): "teenage boy", ("teenager", "female"): "teenage girl",
    ("teenager", None): "teenager",
    ("young_adult", "male"): "young man", ("young_adult", "female"): "young woman",
    ("young_adult", None): "young adult",
    ("adult", "male"): "adult man", ("adult", "female"): "adult woman", ("adult", None): "adult",
    ("senior", "male"): "elderly man", ("senior", "female"): "elderly woman",
    ("senior", None): "elderly person",
    (None, "male"): "man", (None, "female"): "woman", (None, None): "speaker",
}

_ID_RE = re.compile(r"^[A-Za-z0-9][A-Za-z0-9_.-]*$")


def age_group(age_years: int) -> str:
    """Map an age in whole years to its ParaMETA age group (see AGE_GROUP_UPPER)."""
    if age_years < 0:
        raise ValueError(f"negative age {age_years}")
    for name, upper in AGE_GROUP_UPPER:
        if age_years <= upper:
            return name
    return "senior"


def make_caption(factors: Mapping[str, str]) -> str:
    """A one-sentence description that mentions only the known factors.

    Labels without a caption word (an emotion outside the table, an age outside AGE_GROUPS, a
    language outside chinese/english, another factor) are written as they are, so a corpus's own
    labels never need an edit here.

    >>> make_caption({"emotion": "angry", "age": "adult", "gender": "male", "language": "english"})
    'an angry adult man speaking English'
    >>> make_caption({"gender": "female", "language": "chinese"})
    'a woman speaking Chinese'
    >>> make_caption({"emotion": "amused", "gender": "male", "language": "german"})
    'a man speaking German with an amused voice'
    """
    words = []
    emotion = factors.get("emotion")
    odd_emotion = emotion is not None and emotion not in _EMOTION_WORD
    if emotion is not None and not odd_emotion:
        words.append(_EMOTION_WORD[emotion])
    age, gender = factors.get("age"), factors.get("gender")
    known_age = age if age in AGE_GROUPS else None
    known_gender = gender if gender in ("male", "female") else None
    words.append(_PERSON[(known_age, known_gender)])
    phrase = " ".join(words)
    article = "an" if phrase[0] in "aeiou" else "a"
    caption = f"{article} {phrase}"
    extra = []
    if age is not None and known_age is None:
        extra.append(f"age {age.replace('_', ' ')}")
    if gender is not None and known_gender is None:
        extra.append(f"gender {gender.replace('_', ' ')}")
    if extra:
        caption += " (" + ", ".join(extra) + ")"
    if "language" in factors:
        lang = factors["language"]
        caption += f" speaking {_LANGUAGE_WORD.get(lang, lang.replace('_', ' ').title())}"
    if odd_emotion:
        word = emotion.replace("_", " ")
        caption += f" with {'an' if word[0] in 'aeiou' else 'a'} {word} voice"
    return caption


@dataclass
class Utterance:
    """One utterance of a corpus: ``utt`` must start with ``spk`` followed by '-'."""

    utt: str
    spk: str
    wav: Path
    factors: Dict[str, str] = field(default_factory=dict)
    text: Optional[str] = None
    source: str = ""  # where the utterance was found (file[:line]), used in error messages


def check_wav(wav: Path, source: str) -> int:
    """Return the number of samples of ``wav``; DataError naming ``source`` if missing/unreadable."""
    import soundfile as sf

    if not wav.is_file():
        raise DataError(f"{source}: audio file {wav} does not exist")
    try:
        return int(sf.info(str(wav)).frames)
    except RuntimeError as err:
        raise DataError(f"{source}: cannot read audio file {wav}: {err}") from None


def drop_empty_audio(utts: Sequence[Utterance], log=sys.stderr) -> List[Utterance]:
    """Check every wav exists and is readable; drop (and list) the ones with zero samples."""
    kept, empty = [], []
    for u in utts:
        (kept if check_wav(u.wav, u.source or u.utt) > 0 else empty).append(u)
    if empty:
        print(f"dropped {len(empty)} utterance(s) whose audio file has zero samples:", file=log)
        for u in empty:
            print(f"  {u.utt} {u.wav}", file=log)
    return kept


def check_vocabularies(vocabularies: Mapping[str, Sequence[str]]) -> None:
    """DataError on an empty vocabulary, a duplicate label or a label that is not one token."""
    for factor, labels in vocabularies.items():
        if not labels:
            raise DataError(f"vocabulary of {factor!r} is empty")
        seen = set()
        for lab in labels:
            if not lab or any(c.isspace() for c in lab):
                raise DataError(f"vocabulary of {factor!r}: label {lab!r} must be one token without spaces")
            if lab in seen:
                raise DataError(f"vocabulary of {factor!r}: label {lab!r} is listed twice")
            seen.add(lab)


def write_label_vocabularies(lang_dir: Path, vocabularies: Mapping[str, Sequence[str]]) -> None:
    """Write ``<lang_dir>/<factor>.txt`` (one label per line, index = line) for every factor."""
    check_vocabularies(vocabularies)
    for factor, labels in vocabularies.items():
        write_list(Path(lang_dir) / f"{factor}.txt", labels)


def write_style_data_dir(data_dir: Path, utts: Iterable[Utterance], with_text: bool,
                         vocabularies: Mapping[str, Sequence[str]]) -> None:
    """Write a Kaldi data dir: wav.scp, utt2spk, spk2utt, [text], utt2<factor>, utt2caption.

    Every table is C-sorted and written atomically. Raises DataError on a duplicate
    utterance id, an id without its speaker prefix, a factor or label outside the corpus's
    ``vocabularies``, or (with ``with_text``) an utterance without text.
    """
    data_dir = Path(data_dir)
    utts = list(utts)
    if not utts:
        raise DataError(f"{data_dir}: no utterances to write")
    seen: Dict[str, str] = {}
    for u in utts:
        where = u.source or u.utt
        if not _ID_RE.match(u.utt) or not _ID_RE.match(u.spk):
            raise DataError(f"{where}: invalid utterance/speaker id {u.utt!r}/{u.spk!r}")
        if not u.utt.startswith(u.spk + "-"):
            raise DataError(f"{where}: utterance id {u.utt!r} does not start with its speaker id {u.spk!r}-")
        if u.utt in seen:
            raise DataError(f"{where}: duplicate utterance id {u.utt!r} (also from {seen[u.utt]})")
        seen[u.utt] = where
        for factor, label in u.factors.items():
            if factor not in vocabularies:
                raise DataError(f"{where}: factor {factor!r} is not among the corpus's vocabularies "
                                f"{sorted(vocabularies)}")
            if label not in vocabularies[factor]:
                raise DataError(f"{where}: label {label!r} is not in the corpus's {factor} vocabulary "
                                f"{list(vocabularies[factor])} (add it to the vocabulary of the data prep)")
        if with_text and not (u.text and u.text.strip()):
            raise DataError(f"{where}: utterance {u.utt} has no transcript")
        if any(c.isspace() for c in str(u.wav)):
            raise DataError(f"{where}: audio path {u.wav} contains whitespace, which a wav.scp entry "
                            f"cannot hold; point the corpus variable at a symbolic link without "
                            f"spaces (ln -s '<corpus dir>' /data/<name>)")

    write_kv(data_dir / "wav.scp", {u.utt: os.path.abspath(u.wav) for u in utts})
    write_kv(data_dir / "utt2spk", {u.utt: u.spk for u in utts})
    spk2utt: Dict[str, List[str]] = {}
    for u in sorted(utts, key=lambda u: u.utt.encode("utf-8")):
        spk2utt.setdefault(u.spk, []).append(u.utt)
    write_kv(data_dir / "spk2utt", {s: " ".join(us) for s, us in spk2utt.items()})
    if with_text:
        write_kv(data_dir / "text", {u.utt: " ".join(u.text.split()) for u in utts})
    elif (data_dir / "text").exists():
        (data_dir / "text").unlink()
    for factor in vocabularies:
        table = {u.utt: u.factors[factor] for u in utts if factor in u.factors}
        path = data_dir / f"utt2{factor}"
        if table:
            write_kv(path, table)
        elif path.exists():
            path.unlink()  # a stale table from an earlier run would claim labels we do not have
    write_kv(data_dir / "utt2caption", {u.utt: make_caption(u.factors) for u in utts})


def summarize(utts: Sequence[Utterance], vocabularies: Mapping[str, Sequence[str]], log=sys.stderr) -> None:
    """Print utterance/speaker counts and the label histogram of each factor."""
    spks = {u.spk for u in utts}
    print(f"prepared {len(utts)} utterances of {len(spks)} speakers", file=log)
    for factor, labels in vocabularies.items():
        counts = {lab: 0 for lab in labels}
        unknown = 0
        for u in utts:
            if factor in u.factors:
                counts[u.factors[factor]] += 1
            else:
                unknown += 1
        shown = " ".join(f"{lab}={n}" for lab, n in counts.items() if n)
        print(f"  {factor}: {shown or '-'}" + (f" unknown={unknown}" if unknown else ""), file=log)


def corpus_parser(doc: str, corpus_help: str, prefix: str):
    """The command line every ``prepare_<corpus>.py`` shares: --corpus, --out, --lang, --prefix."""
    import argparse
    parser = argparse.ArgumentParser(description=doc, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--corpus", type=Path, required=True, help=corpus_help)
    parser.add_argument("--out", type=Path, required=True, help="output data dir, e.g. data/all")
    parser.add_argument("--lang", type=Path, required=True, help="label vocabulary dir, e.g. data/lang")
    parser.add_argument("--prefix", default=prefix, help="speaker-id prefix (default %(default)s)")
    return parser


def run_prepare(prog: str, args, collect, vocabularies: Mapping[str, Sequence[str]]) -> int:
    """``collect()`` -> utterances; drop empty audio (counted), write the data dir and the corpus's
    ``vocabularies`` (``{factor: labels}``) to ``args.lang``.

    Returns the exit status: 1 with the error on stderr when the corpus is malformed.
    """
    try:
        check_vocabularies(vocabularies)
        utts = drop_empty_audio(collect())
        write_style_data_dir(args.out, utts, with_text=True, vocabularies=vocabularies)
        write_label_vocabularies(args.lang, vocabularies)
    except DataError as err:
        print(f"{prog}: error: {err}", file=sys.stderr)
        return 1
    summarize(utts, vocabularies)
    return 0
