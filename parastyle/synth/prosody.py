"""Emotion prosody settings, per-utterance jitter, and the final espeak-ng settings of an utterance.

An emotion is rendered through four settings that espeak-ng honours:

- pitch level: ``-p`` offset (0–99 scale),
- pitch range: SSML ``<prosody range="R%">`` (100 % = the voice's own range),
- speaking rate: a factor on ``-s`` (words per minute),
- amplitude: espeak-ng ``-a`` (0–200; default 100; above ~130 espeak-ng's own output clips).

Difficulty knobs:

- ``jitter`` multiplies the per-utterance random jitter of every setting (``JITTER_SD``),
- ``overlap`` in [0, 1] pulls every emotion's and age group's offsets toward the reference
  class (neutral, adult): offset x (1 - overlap), so 1 makes the classes identical.
"""
from __future__ import annotations

from dataclasses import dataclass
from typing import Dict

import numpy as np

from parastyle.synth.sentences import LANGUAGES
from parastyle.synth.voices import AGE_SETTINGS, BASE_PITCH, BASE_RATE_WPM, REFERENCE_AGE, Speaker


@dataclass(frozen=True)
class EmotionSetting:
    """Prosody of one emotion: ``pitch`` (``-p`` offset), ``range_pct`` (SSML range, %),
    ``rate`` (speaking-rate factor), ``amplitude`` (espeak-ng ``-a``)."""

    pitch: float
    range_pct: float
    rate: float
    amplitude: float


#: Emotion classes. happy: higher, wider, a bit faster and louder; sad: lower, flat, slow, soft;
#: angry: slightly higher, wide, fast, loud; surprise: highest and widest, moderately loud.
EMOTION_SETTINGS: Dict[str, EmotionSetting] = {
    "neutral": EmotionSetting(pitch=0.0, range_pct=100.0, rate=1.00, amplitude=70.0),
    "happy": EmotionSetting(pitch=12.0, range_pct=160.0, rate=1.10, amplitude=85.0),
    "sad": EmotionSetting(pitch=-11.0, range_pct=50.0, rate=0.82, amplitude=50.0),
    "angry": EmotionSetting(pitch=5.0, range_pct=140.0, rate=1.14, amplitude=110.0),
    "surprise": EmotionSetting(pitch=18.0, range_pct=190.0, rate=0.97, amplitude=90.0),
}
REFERENCE_EMOTION = "neutral"


@dataclass(frozen=True)
class JitterSD:
    """Per-utterance jitter standard deviations (before the ``jitter`` multiplier).

    ``pitch``: ``-p`` units; ``range_pct``: percentage points; ``log_rate``: natural-log units;
    ``amplitude``: ``-a`` units.
    """

    pitch: float = 5.0
    range_pct: float = 20.0
    log_rate: float = 0.06
    amplitude: float = 10.0


JITTER_SD = JitterSD()

#: Clamps of the final settings (espeak-ng's valid or sensible ranges).
PITCH_LIMITS = (0, 99)
RANGE_LIMITS = (20, 300)
RATE_LIMITS = (80, 450)
AMPLITUDE_LIMITS = (10, 130)


@dataclass(frozen=True)
class UtteranceProsody:
    """Final rendering settings of one utterance.

    ``voice``: espeak-ng ``-v`` (``<language voice>+<variant>``); ``pitch``: ``-p``; ``rate``: ``-s``;
    ``amplitude``: ``-a``; ``range_pct``: SSML range; ``warp``: resampling factor applied after
    rendering; ``tremolo_depth``/``tremolo_hz``/``tremolo_phase``: amplitude modulation;
    ``gain_db``: recording gain.
    """

    voice: str
    pitch: int
    rate: int
    amplitude: int
    range_pct: int
    warp: float
    tremolo_depth: float
    tremolo_hz: float
    tremolo_phase: float
    gain_db: float


def _pull(value: float, reference: float, overlap: float) -> float:
    return reference + (value - reference) * (1.0 - overlap)


def utterance_prosody(speaker: Speaker, emotion: str, jitter: float, overlap: float,
                      rng: np.random.Generator) -> UtteranceProsody:
    """Combine speaker identity, age group, emotion and jitter into espeak-ng settings.

    pitch  = clip(BASE_PITCH + speaker.pitch_offset + age.pitch' + emo.pitch' + N(0, sd_p j))
    rate   = clip(BASE_RATE_WPM * lang.rate_scale * speaker.rate * age.rate' * emo.rate'
                  * exp(N(0, sd_r j)) / warp)
    range  = clip(emo.range' + N(0, sd_range j))
    amp    = clip(emo.amplitude' + N(0, sd_a j))
    warp   = speaker.warp * age.warp'
    where x' = reference + (x - reference) * (1 - overlap) and j = ``jitter``. Rate is divided by
    the warp so that the resampling keeps the duration set by the rate.
    """
    if not 0.0 <= overlap <= 1.0:
        raise ValueError(f"overlap must be in [0, 1], got {overlap}")
    if jitter < 0:
        raise ValueError(f"jitter must be >= 0, got {jitter}")
    if emotion not in EMOTION_SETTINGS:
        raise ValueError(f"unknown emotion {emotion!r}; known: {sorted(EMOTION_SETTINGS)}")
    emo, ref_emo = EMOTION_SETTINGS[emotion], EMOTION_SETTINGS[REFERENCE_EMOTION]
    age, ref_age = AGE_SETTINGS[speaker.age], AGE_SETTINGS[REFERENCE_AGE]
    sd = JITTER_SD
    # Draw every jitter term in a fixed order (determinism does not depend on the class).
    j_pitch, j_range, j_rate, j_amp = rng.normal(0.0, 1.0, size=4) * jitter
    phase = float(rng.uniform(0.0, 2 * np.pi))

    warp = speaker.warp * _pull(age.warp, ref_age.warp, overlap)
    pitch = (BASE_PITCH + speaker.pitch_offset + _pull(age.pitch, ref_age.pitch, overlap)
             + _pull(emo.pitch, ref_emo.pitch, overlap) + j_pitch * sd.pitch)
    rate = (BASE_RATE_WPM * LANGUAGES[speaker.language].rate_scale * speaker.rate_factor
            * _pull(age.rate, ref_age.rate, overlap) * _pull(emo.rate, ref_emo.rate, overlap)
            * np.exp(j_rate * sd.log_rate) / warp)
    range_pct = _pull(emo.range_pct, ref_emo.range_pct, overlap) + j_range * sd.range_pct
    amplitude = _pull(emo.amplitude, ref_emo.amplitude, overlap) + j_amp * sd.amplitude
    return UtteranceProsody(
        voice=f"{LANGUAGES[speaker.language].espeak_voice}+{speaker.variant}",
        pitch=int(np.clip(round(pitch), *PITCH_LIMITS)),
        rate=int(np.clip(round(rate), *RATE_LIMITS)),
        amplitude=int(np.clip(round(amplitude), *AMPLITUDE_LIMITS)),
        range_pct=int(np.clip(round(range_pct), *RANGE_LIMITS)),
        warp=round(float(warp), 3),
        tremolo_depth=round(_pull(age.tremolo_depth, ref_age.tremolo_depth, overlap), 3),
        tremolo_hz=age.tremolo_hz,
        tremolo_phase=round(phase, 4),
        gain_db=speaker.gain_db,
    )
