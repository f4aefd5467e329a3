"""Controllable synthetic speech-style corpus rendered with espeak-ng.

Factors with known ground truth: language, gender, age group (speaker-bound), emotion and
sentence (per utterance), speaker identity; difficulty knobs: prosody jitter, class overlap,
speaker spread and additive noise. Entry point: ``python -m parastyle.bin.make_synth_corpus``;
library entry point :func:`parastyle.synth.generate.make_corpus`.
"""
from parastyle.synth.generate import SAMPLE_RATE, SynthConfig, SynthError, make_corpus, plan_corpus
from parastyle.synth.stats import cramers_v, pairwise_cramers_v

__all__ = ["SAMPLE_RATE", "SynthConfig", "SynthError", "make_corpus", "plan_corpus", "cramers_v",
           "pairwise_cramers_v"]
