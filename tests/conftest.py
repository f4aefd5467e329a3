"""Shared test helpers: one CPU thread, and a fabricated small Kaldi data directory with real wavs.

Fixtures:
    make_data_dir_fixture  ``factory(name="data", **kw) -> Path``: calls :func:`make_data_dir`
                           under the test's ``tmp_path``.
    small_data_dir         a 4-speaker, 12-utterance directory (``tmp_path/data``) with wavs,
                           text, factor, caption, tag files, utt2dur and ``tmp_path/lang``.
"""
from __future__ import annotations

import sys
from pathlib import Path
from typing import Dict, Optional, Sequence

import numpy as np
import pytest
import soundfile as sf
import torch

torch.set_num_threads(1)

EMOTIONS = ("angry", "happy", "neutral", "sad")
GENDERS = ("female", "male")
TAGS = ("breathy", "fast", "loud", "low-pitched", "slow")


def write_wav(path: Path, seconds: float, sample_rate: int = 16000, seed: int = 0, freq: float = 220.0) -> Path:
    """Write a mono 16-bit wav: a sine tone plus a little noise, ``seconds`` long."""
    rng = np.random.RandomState(seed)
    t = np.arange(int(round(seconds * sample_rate))) / sample_rate
    x = 0.3 * np.sin(2 * np.pi * freq * t) + 0.01 * rng.randn(t.size)
    path.parent.mkdir(parents=True, exist_ok=True)
    sf.write(str(path), x.astype(np.float32), sample_rate, subtype="PCM_16")
    return path


def make_data_dir(path, num_spk: int = 4, utts_per_spk: int = 3, sample_rate: int = 16000,
                  seed: int = 0, text: bool = True, utt2dur: bool = True, caption: bool = True,
                  tags: bool = True, factors: Optional[Dict[str, Sequence[str]]] = None,
                  unknown: Sequence[str] = (), lang_dir=None, spk_prefix: str = "spk") -> Path:
    """Fabricate a valid Kaldi data directory at ``path`` with real wav files in ``path/wav``.

    Speakers ``<spk_prefix>1..N`` (gender alternates by speaker), utterances
    ``<spk>-u<j>`` (emotion cycles over utterances, age by speaker). ``factors`` overrides
    the label sets ``{"emotion": EMOTIONS, "gender": GENDERS}``; utterance ids in ``unknown``
    get no factor lines (unknown labels). With ``lang_dir``, vocabularies ``<factor>.txt``
    (C-sorted labels) and ``tags.txt`` are written there. Returns ``path``.
    """
    path = Path(path)
    path.mkdir(parents=True, exist_ok=True)
    factors = dict(factors) if factors is not None else {"emotion": EMOTIONS, "gender": GENDERS}
    rng = np.random.RandomState(seed)
    tables: Dict[str, Dict[str, str]] = {"wav.scp": {}, "utt2spk": {}, "text": {}, "utt2dur": {},
                                         "utt2caption": {}, "utt2tags": {}}
    tables.update({f"utt2{f}": {} for f in factors})
    k = 0
    for s in range(1, num_spk + 1):
        spk = f"{spk_prefix}{s}"
        for j in range(1, utts_per_spk + 1):
            utt = f"{spk}-u{j}"
            dur = round(float(rng.uniform(0.25, 0.5)), 3)
            wav = write_wav(path / "wav" / f"{utt}.wav", dur, sample_rate, seed=seed * 1000 + k,
                            freq=150.0 + 20 * s)
            tables["wav.scp"][utt] = str(wav.resolve())
            tables["utt2spk"][utt] = spk
            tables["text"][utt] = f"sentence number {j} of speaker {s}"
            tables["utt2dur"][utt] = f"{dur:.3f}"
            for f, labels in factors.items():
                if utt not in unknown:
                    index = (s - 1) if f in ("gender", "age") else k
                    tables[f"utt2{f}"][utt] = labels[index % len(labels)]
            tables["utt2caption"][utt] = f"a {tables['utt2spk'][utt]} voice, sentence {j}"
            tables["utt2tags"][utt] = " ".join(sorted({TAGS[k % len(TAGS)], TAGS[(k + s) % len(TAGS)]}))
            k += 1
    for name, on in (("text", text), ("utt2dur", utt2dur), ("utt2caption", caption), ("utt2tags", tags)):
        if not on:
            del tables[name]
    spk2utt: Dict[str, list] = {}
    for utt in sorted(tables["utt2spk"]):
        spk2utt.setdefault(tables["utt2spk"][utt], []).append(utt)
    tables["spk2utt"] = {spk: " ".join(u) for spk, u in spk2utt.items()}
    for name, table in tables.items():
        with open(path / name, "w", encoding="utf-8") as f:
            for key in sorted(table, key=lambda x: x.encode("utf-8")):
                f.write(f"{key} {table[key]}\n")
    if lang_dir is not None:
        lang_dir = Path(lang_dir)
        lang_dir.mkdir(parents=True, exist_ok=True)
        for f, labels in factors.items():
            (lang_dir / f"{f}.txt").write_text("".join(f"{x}\n" for x in sorted(labels)), encoding="utf-8")
        if tags:
            (lang_dir / "tags.txt").write_text("".join(f"{x}\n" for x in sorted(TAGS)), encoding="utf-8")
    return path


@pytest.fixture
def make_data_dir_fixture(tmp_path):
    """``factory(name="data", **kw)``: :func:`make_data_dir` at ``tmp_path/name``."""
    def factory(name: str = "data", **kw) -> Path:
        return make_data_dir(tmp_path / name, **kw)
    return factory


@pytest.fixture
def small_data_dir(tmp_path) -> Path:
    """A valid 4-speaker, 12-utterance data dir at ``tmp_path/data`` (vocabularies in ``tmp_path/lang``)."""
    return make_data_dir(tmp_path / "data", lang_dir=tmp_path / "lang")


def pytest_sessionstart(session):
    """Free the module name ``conftest``: directory-local helper modules imported as
    ``from conftest import ...`` (with their directory put on sys.path) must not resolve to
    this file, which pytest registered under that name."""
    mod = sys.modules.get("conftest")
    if mod is not None and Path(getattr(mod, "__file__", "")).resolve() == Path(__file__).resolve():
        del sys.modules["conftest"]
