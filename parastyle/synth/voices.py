"""Speakers of the synthetic corpus: gender voice variants, age-group settings and speaker draws.

A speaker owns its gender, age group and language, plus an identity made of

- an espeak-ng voice variant of its gender (``+m1`` … ``+m7`` male, ``+f1`` … ``+f5`` female),
- a pitch offset in espeak-ng ``-p`` units (default pitch 45 on espeak-ng's 0–99 scale),
- a speaking-rate factor,
- a vocal-tract warp factor (the rendered waveform is resampled by this factor and played at
  22,050 Hz, which scales F0 and all formants together and shortens the utterance; the rate is
  divided by the same factor so the duration stays put),
- a recording gain in dB.

The spread of these identity values (``speaker_spread``) is a difficulty knob: the pitch offsets
overlap the emotion and age pitch shifts, and the warp overlaps the child warp and the gap between
the male and female variants.
"""
from __future__ import annotations

from dataclasses import asdict, dataclass
from typing import Dict, List, Sequence

import numpy as np

#: espeak-ng voice variants per gender (files in espeak-ng-data/voices/!v).
GENDER_VARIANTS: Dict[str, List[str]] = {
    "male": ["m1", "m2", "m3", "m4", "m5", "m6", "m7"],
    "female": ["f1", "f2", "f3", "f4", "f5"],
}

#: Base espeak-ng pitch (``-p``, 0–99) before speaker, age and emotion offsets.
BASE_PITCH = 45.0
#: Base speaking rate in words per minute (espeak-ng ``-s``) before all factors.
BASE_RATE_WPM = 175.0


@dataclass(frozen=True)
class AgeSetting:
    """Voice settings of one age group, applied on top of the speaker's own identity.

    ``pitch``: offset in ``-p`` units; ``rate``: speaking-rate factor; ``warp``: vocal-tract warp
    factor (multiplies the speaker's warp; >1 = shorter vocal tract, higher F0 and formants);
    ``tremolo_depth`` / ``tremolo_hz``: amplitude modulation ``1 + depth * sin(2 pi hz t + phase)``
    applied after rendering (0 = none).
    """

    pitch: float
    rate: float
    warp: float
    tremolo_depth: float
    tremolo_hz: float


#: Age groups. child = higher pitch + shorter vocal tract + faster; senior = lower pitch, slower,
#: slightly longer vocal tract and a 5.5 Hz amplitude tremolo.
AGE_SETTINGS: Dict[str, AgeSetting] = {
    "child": AgeSetting(pitch=10.0, rate=1.08, warp=1.14, tremolo_depth=0.0, tremolo_hz=0.0),
    "adult": AgeSetting(pitch=0.0, rate=1.00, warp=1.00, tremolo_depth=0.0, tremolo_hz=0.0),
    "senior": AgeSetting(pitch=-8.0, rate=0.86, warp=0.96, tremolo_depth=0.30, tremolo_hz=5.5),
}
REFERENCE_AGE = "adult"


@dataclass(frozen=True)
class SpeakerSpread:
    """Standard deviations of the speaker identity draws (before the ``speaker_spread`` multiplier).

    ``pitch``: ``-p`` units (normal); ``log_rate`` and ``log_warp``: natural-log units (log-normal
    factors); ``gain_db``: dB (normal).
    """

    pitch: float = 8.0
    log_rate: float = 0.07
    log_warp: float = 0.04
    gain_db: float = 3.0


SPEAKER_SPREAD = SpeakerSpread()


@dataclass(frozen=True)
class Speaker:
    """One synthetic speaker: its speaker-bound factors and identity settings."""

    spk_id: str
    gender: str
    age: str
    language: str
    variant: str
    pitch_offset: float
    rate_factor: float
    warp: float
    gain_db: float

    def to_dict(self) -> dict:
        return asdict(self)


def default_num_speakers(num_utts: int, num_cells: int, utts_per_spk: int) -> int:
    """Number of speakers for a corpus of ``num_utts`` utterances.

    ``max(round(num_utts / utts_per_spk), min(2 * num_cells, num_utts // 4))``, at least 1:
    about ``utts_per_spk`` utterances per speaker for large corpora, two speakers per
    gender x age x language cell when the corpus has at least 4 utterances per such speaker.
    E.g. 2,000 utterances, 30 cells, 30 per speaker -> 67 speakers; 400 -> 60; 40 -> 10.
    """
    if num_utts < 1:
        raise ValueError(f"num_utts must be >= 1, got {num_utts}")
    return max(1, round(num_utts / utts_per_spk), min(2 * num_cells, num_utts // 4))


def assign_cells(num_speakers: int, factor_values: Sequence[Sequence[str]],
                 rng: np.random.Generator) -> List[tuple]:
    """Assign a cell (one value per speaker-bound factor) to each speaker, balanced.

    Greedy: each speaker takes, among the least-used cells, one whose values are least used in
    their marginals, then in their pairwise (two-factor) counts (ties broken at random). Every
    cell is used once before any is used twice, and marginal and pairwise counts stay as even
    as the greedy order allows, which keeps the speaker-bound factors independent of each other.

    Returns a list of ``num_speakers`` tuples, aligned with ``factor_values``.
    """
    cells = [tuple(c) for c in np.array(np.meshgrid(*[np.arange(len(v)) for v in factor_values],
                                                     indexing="ij")).reshape(len(factor_values), -1).T]
    cell_count = {c: 0 for c in cells}
    nf = len(factor_values)
    marg = [np.zeros(len(v), dtype=int) for v in factor_values]
    pair = {(f, g): np.zeros((len(factor_values[f]), len(factor_values[g])), dtype=int)
            for f in range(nf) for g in range(f + 1, nf)}
    out = []
    for _ in range(num_speakers):
        min_used = min(cell_count.values())
        cand = [c for c in cells if cell_count[c] == min_used]
        scores = np.array([(sum(marg[f][c[f]] for f in range(nf)),
                            sum(t[c[f], c[g]] for (f, g), t in pair.items())) for c in cand])
        lowest = min(map(tuple, scores))
        best = [c for c, s in zip(cand, scores) if tuple(s) == lowest]
        cell = best[int(rng.integers(len(best)))]
        cell_count[cell] += 1
        for f, v in enumerate(cell):
            marg[f][v] += 1
        for (f, g), t in pair.items():
            t[cell[f], cell[g]] += 1
        out.append(tuple(factor_values[f][v] for f, v in enumerate(cell)))
    return out


def draw_speakers(num_speakers: int, genders: Sequence[str], ages: Sequence[str],
                  languages: Sequence[str], spread: float, rng: np.random.Generator) -> List[Speaker]:
    """Draw ``num_speakers`` speakers with ids ``spk000``… (equal width, at least 3 digits).

    Cells are balanced with :func:`assign_cells`; within a gender the variants are dealt in
    shuffled rounds so each is used about equally; identity offsets are drawn with standard
    deviations ``SPEAKER_SPREAD`` x ``spread``.
    """
    for g in genders:
        if g not in GENDER_VARIANTS:
            raise ValueError(f"unknown gender {g!r}; known: {sorted(GENDER_VARIANTS)}")
    for a in ages:
        if a not in AGE_SETTINGS:
            raise ValueError(f"unknown age group {a!r}; known: {sorted(AGE_SETTINGS)}")
    width = max(3, len(str(num_speakers - 1)))
    cells = assign_cells(num_speakers, [list(genders), list(ages), list(languages)], rng)
    decks: Dict[str, List[str]] = {g: [] for g in genders}
    sd = SPEAKER_SPREAD
    speakers = []
    for i, (gender, age, language) in enumerate(cells):
        if not decks[gender]:
            decks[gender] = [GENDER_VARIANTS[gender][j] for j in rng.permutation(len(GENDER_VARIANTS[gender]))]
        variant = decks[gender].pop()
        speakers.append(Speaker(
            spk_id=f"spk{i:0{width}d}", gender=gender, age=age, language=language, variant=variant,
            pitch_offset=round(float(rng.normal(0.0, sd.pitch * spread)), 3),
            rate_factor=round(float(np.exp(rng.normal(0.0, sd.log_rate * spread))), 4),
            warp=round(float(np.exp(rng.normal(0.0, sd.log_warp * spread))), 4),
            gain_db=round(float(rng.normal(0.0, sd.gain_db * spread)), 3),
        ))
    return speakers
