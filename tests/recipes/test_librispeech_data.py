"""egs/librispeech/vib1 data prep on a fabricated LibriSpeech tree with the real names and layout."""
import os
import subprocess
from pathlib import Path

import numpy as np
import pytest
import soundfile as sf

from parastyle.fileio import read_kv, read_list

REPO = Path(__file__).resolve().parents[2]
RECIPE = REPO / "egs" / "librispeech" / "vib1"

SPEAKERS_TXT = """\
; Some comment lines, as in the real file
;ID  |SEX| SUBSET           |MINUTES| NAME
19   | F | train-clean-100  | 25.19 | Kara Shallenberg
60   | M | train-clean-100  | 20.18 | |CBW|Simon
84   | F | dev-clean        |  8.02 | Christie Nowak
"""

TRANS = {
    ("train-clean-100", "19", "198"): ["NORTHANGER ABBEY", "CHAPTER ONE"],
    ("train-clean-100", "60", "121082"): ["A TALE OF TWO CITIES"],
    ("dev-clean", "84", "121123"): ["GO DO YOU HEAR", "BUT IN LESS THAN FIVE MINUTES"],
}


def make_tree(root: Path, missing_flac=False) -> Path:
    ls = root / "LibriSpeech"
    ls.mkdir(parents=True)
    (ls / "SPEAKERS.TXT").write_text(SPEAKERS_TXT)
    for (subset, spk, chap), lines in TRANS.items():
        d = ls / subset / spk / chap
        d.mkdir(parents=True)
        with open(d / f"{spk}-{chap}.trans.txt", "w") as f:
            for i, text in enumerate(lines):
                utt = f"{spk}-{chap}-{i:04d}"
                f.write(f"{utt} {text}\n")
                if not (missing_flac and i == 1):
                    sf.write(str(d / f"{utt}.flac"), (0.1 * np.sin(np.arange(1600) / 5)).astype(np.float32), 16000)
    return ls


def run_data_sh(tmp_path: Path, *args):
    work = tmp_path / "recipe"
    work.mkdir()
    (work / "local").symlink_to(RECIPE / "local")
    (work / "utils").symlink_to(REPO / "utils")
    env = dict(os.environ, PATH=f"{REPO / 'tools' / 'venv' / 'bin'}{os.pathsep}{os.environ['PATH']}", LC_ALL="C",
               OMP_NUM_THREADS="1")
    return work, subprocess.run(["bash", "local/data.sh", *args], cwd=work, env=env, capture_output=True, text=True)


def test_data_sh_writes_sets(tmp_path):
    ls = make_tree(tmp_path / "corpus")
    work, r = run_data_sh(tmp_path, "--librispeech", str(ls), "--sets", "train-clean-100:train dev-clean:dev")
    assert r.returncode == 0, r.stderr
    train = work / "data" / "train"
    assert read_kv(train / "text") == {"19-198-0000": "NORTHANGER ABBEY", "19-198-0001": "CHAPTER ONE",
                                       "60-121082-0000": "A TALE OF TWO CITIES"}
    assert read_kv(train / "utt2spk") == {"19-198-0000": "19", "19-198-0001": "19", "60-121082-0000": "60"}
    assert read_kv(train / "utt2gender") == {"19-198-0000": "female", "19-198-0001": "female",
                                             "60-121082-0000": "male"}
    wav = read_kv(train / "wav.scp")
    assert wav["60-121082-0000"].endswith("LibriSpeech/train-clean-100/60/121082/60-121082-0000.flac")
    assert Path(wav["60-121082-0000"]).is_file()
    assert read_kv(work / "data" / "dev" / "utt2spk") == {"84-121123-0000": "84", "84-121123-0001": "84"}
    assert read_list(work / "data" / "lang" / "gender.txt") == ["female", "male"]
    assert not list((work / "data").glob("*.tmp"))


def test_missing_corpus_and_bad_input(tmp_path):
    _, r = run_data_sh(tmp_path, "--librispeech", str(tmp_path / "nowhere"))
    assert r.returncode != 0 and "openslr.org/12" in r.stderr
    ls = make_tree(tmp_path / "c2", missing_flac=True)
    import sys
    sys.path.insert(0, str(RECIPE / "local"))
    try:
        import prepare_librispeech as prep
    finally:
        sys.path.pop(0)
    from parastyle.fileio import DataError
    with pytest.raises(DataError, match="19-198-0001.*no audio"):
        prep.prepare(ls, "train-clean-100", tmp_path / "out", tmp_path / "lang")
    (ls / "SPEAKERS.TXT").write_text("19 | X | train-clean-100 | 1.0 | Someone\n")
    with pytest.raises(DataError, match="SPEAKERS.TXT:1: SEX 'X'"):
        prep.read_speakers(ls / "SPEAKERS.TXT")


def test_stage1_paper_config_carries_the_authors_values():
    """conf/train_stage1_ssl.yaml: the authors' stage-1 optimisation (batch 1, AdamW lr 1e-4 for the
    large SSL models, weight decay 0.005, betas (0.9, 0.999), 10 % warm-up, cosine, clip 1, 50 epochs)."""
    import yaml
    c = yaml.safe_load((RECIPE / "conf" / "train_stage1_ssl.yaml").read_text())
    assert c["data"]["batch_size"] == 1 and c["data"]["max_frames"] is None
    assert c["optim"] == {"name": "adamw", "lr": 1.0e-4, "weight_decay": 5.0e-3, "betas": [0.9, 0.999], "eps": 1.0e-8}
    assert c["scheduler"]["name"] == "warmup_cosine" and c["scheduler"]["min_lr_ratio"] == 0.0
    # warm-up over 10 % of the steps, whatever the data (28,539 utterances x 50 epochs for train-clean-100)
    assert c["scheduler"]["warmup_fraction"] == 0.1 and "warmup_steps" not in c["scheduler"]
    assert c["train"]["grad_clip"] == 1.0 and c["train"]["max_epochs"] == 50
    assert c["model"]["beta"] == {"schedule": "incremental", "start": 0.1, "end": 1.0, "reach_before_end_fraction": 0.1}
