"""Fixtures of the synthetic-corpus tests: one small corpus (40 utterances, nj 2) built through the CLI."""
from __future__ import annotations

from pathlib import Path

import pytest

from parastyle.bin import make_synth_corpus

#: Utterances of the shared test corpus (tests/synth/test_synth_corpus.py uses the same number).
NUM_UTTS = 40


def _run_cli(root: Path, seed: int) -> tuple:
    out, lang = root / "all", root / "lang"
    rc = make_synth_corpus.main(["--out", str(out), "--lang_dir", str(lang), "--num_utts", str(NUM_UTTS),
                                 "--seed", str(seed), "--nj", "2", "--quiet"])
    assert rc == 0
    return out, lang


@pytest.fixture(scope="session")
def synth_cli():
    """``run(root, seed) -> (data_dir, lang_dir)``: a 40-utterance corpus under ``root``."""
    return _run_cli


@pytest.fixture(scope="session")
def corpus(tmp_path_factory):
    """``(data_dir, lang_dir)`` of a 40-utterance corpus, seed 3."""
    return _run_cli(tmp_path_factory.mktemp("synth_a"), seed=3)
