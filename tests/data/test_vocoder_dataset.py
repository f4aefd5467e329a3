"""Vocoder dataset: segments exactly aligned with the front-end's frames, deterministic, resumable."""
from __future__ import annotations

import pytest
import soundfile as sf
import torch

from parastyle.data.audio import load_audio
from parastyle.data.vocoder_dataset import VocoderDataset, build_vocoder_dataset
from parastyle.features.frontend import build_frontend
from parastyle.fileio import DataError
from parastyle.train.build import build_dataset

FE = {"type": "logmel"}


def _config(**data):
    d = {"feats": False, "frontend": dict(FE), "cmvn": None, "dataset": "vocoder", "max_frames_per_utt": 8}
    d.update(data)
    return {"data": d, "train": {"seed": 3}}


def test_segments_are_aligned_with_full_utterance_frames(make_data_dir_fixture):
    d = make_data_dir_fixture(sample_rate=22050)
    ds = build_dataset(_config(), d, {}, train=True)
    assert isinstance(ds, VocoderDataset)
    fe = build_frontend(FE)
    wav_scp = dict(line.split(" ", 1) for line in (d / "wav.scp").read_text().splitlines())
    for i, utt in enumerate(ds.utts[:4]):
        item = ds[i]
        assert item["mel"].shape == (8, 80) and item["wav"].shape == (8 * 256,)
        wav = load_audio(utt, wav_scp[utt].strip(), 22050)
        full = fe(wav)                                   # reference: the whole utterance's frames
        # find the start frame by brute force over every offset
        starts = [s for s in range(full.shape[0] - 7) if torch.allclose(full[s:s + 8], item["mel"], atol=1e-5)]
        assert starts, utt
        s = starts[0]
        padded = torch.cat([wav, torch.zeros(full.shape[0] * 256 - wav.numel())])
        torch.testing.assert_close(item["wav"], padded[s * 256:(s + 8) * 256])
    # lengths as batched: every training item is one segment
    assert ds.lengths() == [8] * len(ds)


def test_deterministic_for_seed_and_epoch(make_data_dir_fixture):
    d = make_data_dir_fixture(sample_rate=22050)
    a = build_dataset(_config(), d, {}, train=True)
    b = build_dataset(_config(), d, {}, train=True)
    starts = []
    for epoch in (0, 1):
        a.set_epoch(epoch)
        b.set_epoch(epoch)
        for i in range(len(a)):
            torch.testing.assert_close(a[i]["wav"], b[i]["wav"])
        starts.append(torch.stack([a[i]["wav"][:256] for i in range(len(a))]))
    assert not torch.equal(starts[0], starts[1])          # a new epoch draws new segments


def test_short_utterance_is_padded_before_the_mel(tmp_path, make_data_dir_fixture):
    d = make_data_dir_fixture(sample_rate=22050)
    ds = build_dataset(_config(max_frames_per_utt=200), d, {}, train=True)   # 200 frames = 2.3 s > any utterance
    item = ds[0]
    wav = load_audio(ds.utts[0], ds.wav_scp[ds.utts[0]], 22050)
    padded = torch.cat([wav, torch.zeros(200 * 256 - wav.numel())])
    full = build_frontend(FE)(padded)                     # 201 frames: the segment starts at frame 0 or 1
    ext = torch.cat([padded, torch.zeros(256)])
    s = 0 if torch.allclose(item["mel"], full[:200], atol=1e-5) else 1
    torch.testing.assert_close(item["mel"], full[s:s + 200])
    torch.testing.assert_close(item["wav"], ext[s * 256:(s + 200) * 256])


def test_eval_items_are_whole_utterances_and_collate(make_data_dir_fixture):
    d = make_data_dir_fixture(sample_rate=22050)
    ds = build_dataset(_config(), d, {}, train=False)
    items = [ds[0], ds[1]]
    for it in items:
        assert it["wav"].numel() == it["mel"].shape[0] * 256
        info = sf.info(ds.wav_scp[it["utt_id"]])
        assert it["mel"].shape[0] == 1 + info.frames // 256
    batch = ds.collate(items)
    assert batch["mel"].shape[0] == 2 and batch["wav"].shape[1] == batch["mel"].shape[1] * 256
    assert batch["mel_lens"].tolist() == [it["mel"].shape[0] for it in items]
    n = int(batch["mel_lens"].min())
    short = int(batch["mel_lens"].argmin())
    assert float(batch["wav"][short, n * 256:].abs().sum()) == 0.0


def test_bad_configs_and_inputs(make_data_dir_fixture, tmp_path):
    d = make_data_dir_fixture(sample_rate=22050)
    with pytest.raises(DataError, match="data.feats: false"):
        build_vocoder_dataset(_config(feats=True), d, {}, True)
    with pytest.raises(DataError, match="before CMVN"):
        build_vocoder_dataset(_config(cmvn="x.ark"), d, {}, True)
    with pytest.raises(DataError, match="max_frames_per_utt"):
        build_vocoder_dataset(_config(max_frames_per_utt=None), d, {}, True)
    with pytest.raises(DataError, match="logmel"):
        build_vocoder_dataset(_config(frontend={"type": "fbank"}), d, {}, True)
    lines = (d / "wav.scp").read_text().splitlines()
    (d / "wav.scp").write_text("\n".join(lines[1:]) + "\n")
    with pytest.raises(DataError, match="have no wav"):
        build_vocoder_dataset(_config(), d, {}, True)
