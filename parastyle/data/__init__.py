"""Kaldi data directories, label vocabularies, datasets, samplers and batch collation.

This package's ``__init__`` stays import-light (no torch): shell tools import
``parastyle.data.datadir`` without paying for the deep-learning stack.

``IGNORE_INDEX`` is the label index of an utterance whose value for a style factor is
unknown (its line is absent from ``utt2<factor>``); losses skip it.
"""

IGNORE_INDEX = -100

__all__ = ["IGNORE_INDEX"]
