"""Natural-language captions and tags from the factor values of an utterance.

A caption names every factor (emotion, gender, age group, language) through one of several
paraphrase templates and synonyms, e.g. "A cheerful little girl speaking German." or
"An elderly man sounds sad while speaking French.". ``CAPTION_WORDS`` lists, for each factor
value, the words that identify it in a caption (tests check every caption against it).
Tags are the plain label tokens: ``<emotion> <gender> <age> <language name>``.
"""
from __future__ import annotations

from typing import Dict, List, Tuple

import numpy as np

from parastyle.synth.sentences import LANGUAGES

#: Adjectives per emotion (the first is the plain form used in tags-like phrasing).
EMOTION_ADJECTIVES: Dict[str, List[str]] = {
    "neutral": ["neutral", "calm", "matter-of-fact"],
    "happy": ["happy", "cheerful", "joyful"],
    "sad": ["sad", "gloomy", "sorrowful"],
    "angry": ["angry", "furious", "irritated"],
    "surprise": ["surprised", "astonished", "amazed"],
}

#: Noun phrases per (age group, gender); each names both factors.
PERSON_PHRASES: Dict[Tuple[str, str], List[str]] = {
    ("child", "male"): ["young boy", "little boy", "boy"],
    ("child", "female"): ["young girl", "little girl", "girl"],
    ("adult", "male"): ["adult man", "grown man", "man in his thirties"],
    ("adult", "female"): ["adult woman", "grown woman", "woman in her thirties"],
    ("senior", "male"): ["elderly man", "old man", "senior man"],
    ("senior", "female"): ["elderly woman", "old woman", "senior woman"],
}

#: Words that identify each factor value in a caption (whole words, lower case).
CAPTION_WORDS: Dict[str, Dict[str, List[str]]] = {
    "emotion": {k: [w.split()[-1] for w in v] for k, v in EMOTION_ADJECTIVES.items()},
    "gender": {"male": ["man", "boy"], "female": ["woman", "girl"]},
    "age": {"child": ["boy", "girl"], "adult": ["adult", "grown", "thirties"],
            "senior": ["elderly", "old", "senior"]},
    "language": {k: [lang.name.split()[-1].lower()] for k, lang in LANGUAGES.items()},
}

#: Paraphrase templates; fields: {a} article for the next word, {emo}, {person}, {lang}.
TEMPLATES: List[str] = [
    "{A} {emo} {person} speaking {lang}.",
    "{A} {person} sounds {emo} while speaking {lang}.",
    "{lang} speech from {a} {person} with {a2} {emo} tone.",
    "In {lang}, {a} {person} talks in {a2} {emo} voice.",
    "{A} {person} says something in {lang}, sounding {emo}.",
    "The speaker is {a} {person}; the language is {lang} and the mood is {emo}.",
]


def _article(word: str) -> str:
    return "an" if word[0].lower() in "aeiou" else "a"


def make_caption(emotion: str, gender: str, age: str, language: str, rng: np.random.Generator) -> str:
    """Caption of one utterance; template and synonyms drawn from ``rng`` (3 integers)."""
    t = TEMPLATES[int(rng.integers(len(TEMPLATES)))]
    emo_words = EMOTION_ADJECTIVES[emotion]
    emo = emo_words[int(rng.integers(len(emo_words)))]
    persons = PERSON_PHRASES[(age, gender)]
    person = persons[int(rng.integers(len(persons)))]
    lang = LANGUAGES[language].name
    # {a}/{A} precede {emo} in the first template and {person} elsewhere; {a2} precedes {emo}.
    first = emo if t.startswith("{A} {emo}") else person
    a = _article(first)
    return t.format(A=a.capitalize(), a=a, a2=_article(emo), emo=emo, person=person, lang=lang)


def make_tags(emotion: str, gender: str, age: str, language: str) -> List[str]:
    """Tag tokens of one utterance, e.g. ``['happy', 'female', 'adult', 'german']``."""
    return [emotion, gender, age, LANGUAGES[language].tag]
