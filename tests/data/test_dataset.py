"""Dataset + collate: padding masks, ignore index for unknown labels, side information, crop."""
from __future__ import annotations

import sys
from pathlib import Path

import numpy as np
import pytest
import torch

sys.path.insert(0, str(Path(__file__).resolve().parents[1] / "train"))
from conftest import EMOTIONS, make_datadir  # noqa: E402

from parastyle.data import IGNORE_INDEX
from parastyle.data.collate import collate_batch
from parastyle.data.dataset import StyleDataset
from parastyle.fileio import DataError, read_kv


def _ds(d, **kw):
    return StyleDataset(d, {"emotion": EMOTIONS, "gender": ["female", "male"]}, **kw)


def test_batch_masks_labels_and_side_info(tmp_path):
    d = make_datadir(tmp_path, "train", n=6, unlabelled_emotion=(2,))
    ds = _ds(d)
    items = [ds[i] for i in range(len(ds))]
    batch = collate_batch(items)
    nf = read_kv(d / "utt2num_frames")
    lens = [int(nf[u]) for u in batch["utt_ids"]]
    assert batch["feat_lens"].tolist() == lens == ds.num_frames
    assert batch["feats"].shape == (6, max(lens), 6)
    assert batch["mask"].dtype == torch.bool
    for i, n in enumerate(lens):
        assert batch["mask"][i, :n].all() and not batch["mask"][i, n:].any()
        assert (batch["feats"][i, n:] == 0).all()
    emo = read_kv(d / "utt2emotion")
    for i, u in enumerate(batch["utt_ids"]):
        want = EMOTIONS.index(emo[u]) if u in emo else IGNORE_INDEX
        assert batch["labels"]["emotion"][i].item() == want
    assert (batch["labels"]["emotion"] == IGNORE_INDEX).sum() == 1
    assert batch["speakers"][0] == read_kv(d / "utt2spk")[batch["utt_ids"][0]]
    assert "voice sounding" in batch["captions"][0]
    assert "tags" not in batch and "text" not in batch


def test_unknown_label_is_an_error_naming_line(tmp_path):
    d = make_datadir(tmp_path, "train", n=4)
    lines = (d / "utt2emotion").read_text().splitlines()
    utt = lines[1].split()[0]
    lines[1] = f"{utt} bored"
    (d / "utt2emotion").write_text("\n".join(lines) + "\n")
    with pytest.raises(DataError, match=rf"utt2emotion:2: utterance '{utt}' has label 'bored'"):
        _ds(d)


def test_crop_is_reproducible_and_cmvn_applied(tmp_path):
    d = make_datadir(tmp_path, "train", n=4, min_len=20, max_len=30)
    ds = _ds(d, max_frames_per_utt=10, crop=True, seed=3, cmvn=lambda x: x - 1.0)
    full = _ds(d)
    assert ds.lengths() == [10] * 4
    a = ds[0]["feats"]
    assert a.shape == (10, 6) and torch.equal(ds[0]["feats"], a)
    x = full[0]["feats"] - 1.0
    starts = [s for s in range(x.shape[0] - 9) if torch.equal(x[s:s + 10], a)]
    assert starts                                    # a window of the normalised utterance
    crops = set()
    for epoch in range(8):                           # offsets depend on the epoch
        ds.set_epoch(epoch)
        crops.add(tuple(ds[0]["feats"][0].tolist()))
    assert len(crops) > 1


def test_missing_features_named(tmp_path):
    d = make_datadir(tmp_path, "train", n=4)
    lines = (d / "feats.scp").read_text().splitlines()
    (d / "feats.scp").write_text("\n".join(lines[:-1]) + "\n")
    with pytest.raises(DataError, match="feats.scp: 1 utterance"):
        _ds(d)
