"""egs/synth/style1 stages 0-3 end to end on a tiny corpus: generation, speaker-independent split,
features, CMVN and validation, run in a copy of the recipe under tmp (the repository's recipe
directory is left untouched)."""
from __future__ import annotations

import os
import subprocess
from pathlib import Path

from parastyle.data.datadir import DataDir, validate_data_dir

ROOT = Path(__file__).resolve().parents[2]
RECIPE = ROOT / "egs" / "synth" / "style1"


def recipe_copy(dst: Path) -> Path:
    """A recipe directory at ``dst`` whose files link to the repository's (symlinks resolved, so
    path.sh finds the repository through its own link)."""
    dst.mkdir(parents=True)
    for name in ("run.sh", "local", "conf", "style.sh", "path.sh", "cmd.sh", "utils"):
        (dst / name).symlink_to((RECIPE / name).resolve())
    return dst


def test_synth_style1_stages_0_to_3(tmp_path):
    work = recipe_copy(tmp_path / "style1")
    env = dict(os.environ, OMP_NUM_THREADS="1")
    env.pop("PARASTYLE_ROOT", None)
    p = subprocess.run(["./run.sh", "--stop_stage", "3", "--num_utts", "30", "--nj", "2"], cwd=work, env=env,
                       capture_output=True, text=True, timeout=300)
    assert p.returncode == 0, p.stdout[-3000:] + p.stderr[-3000:]
    for n, purpose in [(0, "data preparation"), (1, "speaker-independent split"), (2, "feature extraction"),
                       (3, "global CMVN")]:
        assert f"stage {n}: {purpose}" in p.stderr

    data, lang = work / "data", work / "data" / "lang"
    assert validate_data_dir(data / "all", no_feats=True, lang_dir=lang) == []
    speakers = {}
    for s in ("train", "dev", "test"):
        assert validate_data_dir(data / s, lang_dir=lang) == [], s
        d = DataDir(data / s)
        assert d.feats_scp is not None and set(d.feats_scp) == set(d.utts)
        assert set(d.utt2num_frames) == set(d.utts) and min(d.utt2num_frames.values()) > 0
        speakers[s] = set(d.speakers)
        assert speakers[s], s
    assert not (speakers["train"] & speakers["dev"] or speakers["train"] & speakers["test"]
                or speakers["dev"] & speakers["test"])
    all_utts = set(DataDir(data / "all").utts)
    assert len(all_utts) == 30
    assert set().union(*(DataDir(data / s).utts for s in ("train", "dev", "test"))) == all_utts
    # train holds every emotion of the corpus; the split report lists per-set class counts
    assert set(DataDir(data / "train").factor("emotion").values()) == set(DataDir(data / "all").factor("emotion").values())
    assert "emotion:" in (data / "split_report.txt").read_text()
    assert (data / "train" / "cmvn.ark").is_file()
    assert not [x.name for x in data.iterdir() if "tmp" in x.name]      # no leftovers of atomic writes


def test_synth_style1_toolkit_folds_share_one_feature_extraction(tmp_path):
    """--folds 2: stage 1 makes speaker-group folds of data/all, stage 2 extracts data/all once and
    gives every fold set its lines, stage 3 computes each fold's CMVN on its own train set."""
    work = recipe_copy(tmp_path / "style1")
    env = dict(os.environ, OMP_NUM_THREADS="1")
    env.pop("PARASTYLE_ROOT", None)
    p = subprocess.run(["./run.sh", "--stop_stage", "3", "--num_utts", "24", "--nj", "1", "--folds", "2",
                        "--fold_args", "--dev 1"], cwd=work, env=env, capture_output=True, text=True, timeout=300)
    assert p.returncode == 0, p.stdout[-3000:] + p.stderr[-3000:]
    assert "stage 1: 2 speaker-group cross-validation folds" in p.stderr
    all_feats = dict(line.split(None, 1) for line in (work / "data/all/feats.scp").read_text().splitlines())
    tested = set()
    for k in (1, 2):
        spk = {}
        for s in ("train", "dev", "test"):
            d = work / "data" / f"fold{k}" / s
            assert validate_data_dir(d, lang_dir=work / "data" / "lang") == []
            feats = dict(line.split(None, 1) for line in (d / "feats.scp").read_text().splitlines())
            assert feats == {u: all_feats[u] for u in DataDir(d).utts}
            spk[s] = set(DataDir(d).speakers)
        assert not (spk["train"] & spk["test"] or spk["dev"] & spk["test"] or spk["train"] & spk["dev"])
        assert len(spk["dev"]) == 1
        assert not spk["test"] & tested
        tested |= spk["test"]
        assert (work / "data" / f"fold{k}" / "train" / "cmvn.ark").is_file()
    assert tested == set(DataDir(work / "data" / "all").speakers)
    assert not (work / "data" / "train").exists()      # no random split in fold mode
