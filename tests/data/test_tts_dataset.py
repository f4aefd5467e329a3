"""Dataset ``tts``: phone ids (+ blanks), log-mel, F0/energy and style vectors per utterance, padding
collate, and errors that name the file and utterance."""
import kaldiio
import numpy as np
import pytest
import torch

from parastyle.data.tts_dataset import collate_tts
from parastyle.fileio import DataError
from parastyle.train.build import build_dataset, build_train_sampler


def make_dir(tmp_path, frames=(12, 7, 9), bad_prosody=None, style_dim=5):
    d, lang = tmp_path / "data", tmp_path / "lang"
    d.mkdir()
    lang.mkdir()
    (lang / "phones.txt").write_text("<pad>\n<blank>\n<en>\n|\na\nb\n")
    (lang / "emotion.txt").write_text("happy\nsad\n")
    rng = np.random.RandomState(0)
    utts = [f"s1-{i}" for i in range(len(frames))]
    feats, pros, style = {}, {}, {}
    for u, t in zip(utts, frames):
        feats[u] = rng.randn(t, 80).astype(np.float32)
        pros[u] = np.stack([rng.rand(t) * 200, rng.rand(t)], 1).astype(np.float32)
        style[u] = rng.randn(1, style_dim).astype(np.float32)
    if bad_prosody:
        pros[bad_prosody] = pros[bad_prosody][:-1]
    kaldiio.save_ark(str(tmp_path / "f.ark"), feats, scp=str(d / "feats.scp"))
    kaldiio.save_ark(str(tmp_path / "p.ark"), pros, scp=str(d / "prosody.scp"))
    kaldiio.save_ark(str(tmp_path / "s.ark"), style, scp=str(d / "style.scp"))
    (d / "utt2spk").write_text("".join(f"{u} s1\n" for u in utts))
    (d / "utt2num_frames").write_text("".join(f"{u} {t}\n" for u, t in zip(utts, frames)))
    (d / "phones").write_text("s1-0 <en> a | b\ns1-1 <en> b\ns1-2 <en> a a\n")
    (d / "utt2emotion").write_text("s1-0 sad\ns1-2 happy\n")
    (d / "text").write_text("s1-0 a b\ns1-1 b\ns1-2 a a\n")
    return d, lang, feats, pros, style


def config(lang, **tts):
    return {"data": {"dataset": "tts", "feats": True, "cmvn": None, "max_frames": 40, "batch_size": None,
                     "max_frames_per_utt": None,
                     "tts": {"phone_vocab": str(lang / "phones.txt"), **tts}},
            "train": {"seed": 0}}


def test_items_and_collate(tmp_path):
    d, lang, feats, pros, style = make_dir(tmp_path)
    ds = build_dataset(config(lang), d, {"emotion": ["happy", "sad"]}, train=True)
    assert ds.lengths() == [12, 7, 9]
    it = ds[0]
    assert it["phones"].tolist() == [1, 2, 1, 4, 1, 3, 1, 5, 1]          # blanks interleaved
    torch.testing.assert_close(it["feats"], torch.from_numpy(feats["s1-0"]))
    torch.testing.assert_close(it["f0"], torch.from_numpy(pros["s1-0"][:, 0]))
    torch.testing.assert_close(it["style"], torch.from_numpy(style["s1-0"][0]))
    b = collate_tts([ds[0], ds[1]])
    assert b["phones"].shape == (2, 9) and b["phone_lens"].tolist() == [9, 5]
    assert b["phones"][1].tolist() == [1, 2, 1, 5, 1, 0, 0, 0, 0]
    assert b["feats"].shape == (2, 12, 80) and b["feats"][1, 7:].abs().sum() == 0
    assert b["mask"].sum(1).tolist() == [12, 7] and b["energy"][1, 7:].sum() == 0
    assert b["labels"]["emotion"].tolist() == [1, -100]
    assert b["style"].shape == (2, 5) and b["text"] == ["a b", "b"]
    nob = build_dataset(config(lang, add_blank=False), d, {"emotion": ["happy", "sad"]}, train=True)
    assert nob[0]["phones"].tolist() == [2, 4, 3, 5]
    sampler = build_train_sampler(config(lang), ds)
    assert sorted(i for batch in sampler for i in batch) == [0, 1, 2]


def test_speaker_style_has_no_vector(tmp_path):
    d, lang, *_ = make_dir(tmp_path)
    (d / "style.scp").unlink()
    ds = build_dataset(config(lang, style={"type": "speaker"}), d, {}, train=False)
    b = collate_tts([ds[0]])
    assert "style" not in b and b["speakers"] == ["s1"]


def test_errors(tmp_path):
    d, lang, *_ = make_dir(tmp_path, bad_prosody="s1-1")
    ds = build_dataset(config(lang), d, {}, train=True)
    with pytest.raises(DataError, match="prosody.scp: utterance 's1-1' has shape"):
        ds[1]
    c = config(lang)
    c["data"]["max_frames_per_utt"] = 5
    with pytest.raises(DataError, match="max_frames_per_utt: null"):
        build_dataset(c, d, {}, train=True)
    with pytest.raises(DataError, match="unknown keys"):
        build_dataset(config(lang, blanks=True), d, {}, train=True)
    (d / "phones").write_text("s1-0 <en> a | z\ns1-1 <en> b\ns1-2 <en> a a\n")
    with pytest.raises(DataError, match="utterance 's1-0': phone 'z' is not in the vocabulary"):
        build_dataset(config(lang), d, {}, train=True)
    (d / "phones").write_text("s1-0 <en> a\ns1-1 <en> b\n")
    with pytest.raises(DataError, match="have no phones.*s1-2"):
        build_dataset(config(lang), d, {}, train=True)
    (d / "phones").write_text("s1-0 <en> a\ns1-1 <en> b a b a b\ns1-2 a\n")
    with pytest.raises(DataError, match="'s1-1' has 7 frames for 13 phone symbols"):
        build_dataset(config(lang), d, {}, train=True)
    (d / "style.scp").unlink()
    (d / "phones").write_text("s1-0 <en> a\ns1-1 <en> b\ns1-2 a\n")
    with pytest.raises(DataError, match="style.scp: file not found"):
        build_dataset(config(lang), d, {}, train=True)
