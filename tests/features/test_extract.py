"""Feature extraction of a data dir: parallel jobs agree with one job, outputs are complete and
validated, a failing utterance is named and leaves no feats.scp, segments, CMVN CLI, and the
on-the-fly dataset reads the same features."""
from __future__ import annotations

import subprocess
import sys

import kaldiio
import numpy as np
import pytest
import torch
import yaml

from parastyle.data.datadir import validate_data_dir
from parastyle.data.dataset import StyleDataset
from parastyle.features.cmvn import GlobalCMVN, compute_stats
from parastyle.features.extract import extract_feats
from parastyle.features.frontend import build_frontend
from parastyle.fileio import DataError, read_kv, write_kv

FBANK = {"type": "fbank", "sample_rate": 16000, "num_mel_bins": 23}


def _feats(d):
    return {u: kaldiio.load_mat(e) for u, e in read_kv(d / "feats.scp").items()}


def test_parallel_extraction_equals_serial_and_validates(tmp_path, make_data_dir_fixture):
    d1 = make_data_dir_fixture("a", num_spk=3, utts_per_spk=3, lang_dir=tmp_path / "lang")
    d2 = make_data_dir_fixture("b", num_spk=3, utts_per_spk=3)
    s1 = extract_feats(d1, FBANK, tmp_path / "dump_a", nj=1, progress=False)
    s2 = extract_feats(d2, FBANK, tmp_path / "dump_b", nj=2, progress=False)
    assert s1["num_utts"] == s2["num_utts"] == 9 and s2["nj"] == 2
    f1, f2 = _feats(d1), _feats(d2)
    assert list(f1) == sorted(read_kv(d1 / "utt2spk")) and list(f1) == list(f2)
    for u in f1:
        assert np.array_equal(f1[u], f2[u])
    assert {u: int(n) for u, n in read_kv(d2 / "utt2num_frames").items()} == {u: m.shape[0] for u, m in f2.items()}
    assert sorted(p.name for p in (tmp_path / "dump_b").iterdir()) == ["feats.1.ark", "feats.2.ark"]
    conf = yaml.safe_load((d2 / "feats_conf.yaml").read_text())
    fe = build_frontend(conf)
    u0 = next(iter(f1))
    from parastyle.data.audio import load_audio
    wav = load_audio(u0, read_kv(d1 / "wav.scp")[u0], fe.sample_rate)
    assert np.allclose(fe(wav).numpy(), f1[u0])
    assert validate_data_dir(d1, lang_dir=tmp_path / "lang") == []


def test_failing_utterance_is_named_and_leaves_no_feats_scp(tmp_path, make_data_dir_fixture):
    d = make_data_dir_fixture("data", num_spk=2, utts_per_spk=3)
    extract_feats(d, FBANK, tmp_path / "dump", nj=2, progress=False)
    assert (d / "feats.scp").is_file()
    wav = read_kv(d / "wav.scp")
    bad = sorted(wav)[4]
    with open(wav[bad], "wb") as f:
        f.write(b"this is not a wav file")
    for nj in (1, 2):
        with pytest.raises(DataError) as e:
            extract_feats(d, FBANK, tmp_path / "dump", nj=nj, progress=False)
        assert repr(bad) in str(e.value) and "wav.scp:5" in str(e.value)
        assert not (d / "feats.scp").exists() and not (d / "utt2num_frames").exists()
        assert not list((tmp_path / "dump").glob("*.ark"))


def test_cli_reports_error_and_exit_status(tmp_path, make_data_dir_fixture):
    d = make_data_dir_fixture("data", num_spk=2, utts_per_spk=2)
    conf = tmp_path / "feats.yaml"
    conf.write_text(yaml.safe_dump(FBANK))
    wav = read_kv(d / "wav.scp")
    write_kv(d / "wav.scp", {**wav, sorted(wav)[0]: "exit 1 |"})
    p = subprocess.run([sys.executable, "-m", "parastyle.bin.extract_feats", "--data", str(d), "--conf", str(conf),
                        "--dump", str(tmp_path / "dump"), "--nj", "2"], capture_output=True, text=True)
    assert p.returncode == 1
    assert sorted(wav)[0] in p.stderr and "exited with status 1" in p.stderr and "no " in p.stderr
    assert not (d / "feats.scp").exists()


def test_segments_and_cmvn_cli(tmp_path, make_data_dir_fixture):
    d = make_data_dir_fixture("data", num_spk=2, utts_per_spk=2, text=False, caption=False, tags=False,
                              utt2dur=False)
    wav = read_kv(d / "wav.scp")
    utt2spk = read_kv(d / "utt2spk")
    # two segments per recording; the recordings keep their utterance names as recording ids
    segs, u2s = {}, {}
    for reco in wav:
        for k, (s, e) in enumerate(((0.0, 0.1), (0.1, 0.2))):
            segs[f"{reco}-seg{k}"] = f"{reco} {s} {e}"
            u2s[f"{reco}-seg{k}"] = utt2spk[reco]
    for name in ("utt2emotion", "utt2gender"):
        (d / name).unlink()
    write_kv(d / "segments", segs)
    write_kv(d / "utt2spk", u2s)
    spk2utt = {}
    for u in sorted(u2s):
        spk2utt.setdefault(u2s[u], []).append(u)
    write_kv(d / "spk2utt", {s: " ".join(us) for s, us in spk2utt.items()})
    extract_feats(d, FBANK, tmp_path / "dump", nj=2, progress=False)
    feats = _feats(d)
    assert len(feats) == 8 and all(m.shape[0] == 1 + (1600 - 400) // 160 for m in feats.values())
    p = subprocess.run([sys.executable, "-m", "parastyle.bin.compute_cmvn", "--data", str(d)],
                       capture_output=True, text=True)
    assert p.returncode == 0, p.stderr
    expected = compute_stats(feats.values()).stats
    cmvn = GlobalCMVN.from_file(d / "cmvn.ark")
    assert np.allclose(cmvn.mean.numpy(), expected[0, :-1] / expected[0, -1], atol=1e-5)


def test_on_the_fly_dataset_matches_dumped_features(tmp_path, make_data_dir_fixture):
    d = make_data_dir_fixture("data", num_spk=2, utts_per_spk=2, lang_dir=tmp_path / "lang")
    extract_feats(d, FBANK, tmp_path / "dump", nj=1, progress=False)
    factors = {"emotion": ["angry", "happy", "neutral", "sad"]}
    dumped = StyleDataset(d, factors, use_feats=True)
    fly = StyleDataset(d, factors, use_feats=False, frontend=build_frontend(FBANK))
    for i in range(len(dumped)):
        assert torch.allclose(dumped[i]["feats"], fly[i]["feats"])
        assert abs(fly.num_frames[i] - dumped.num_frames[i]) <= 3      # estimate from utt2dur / frame shift


def test_frame_shift_file_reaches_task_info(tmp_path, make_data_dir_fixture):
    from parastyle.data.datadir import read_frame_shift
    from parastyle.train.build import build_task_info
    from parastyle.train.config import load_config
    d = make_data_dir_fixture("data", num_spk=2, utts_per_spk=2, lang_dir=tmp_path / "lang")
    extract_feats(d, FBANK, tmp_path / "dump", nj=1, progress=False)
    assert read_frame_shift(d) == pytest.approx(0.01)
    (d / "feats_conf.yaml").unlink()                 # e.g. dumped SSL layers: only frame_shift is known
    (d / "frame_shift").write_text("0.02\n")
    config = load_config(None, [("data.factors", ["emotion"])])
    assert build_task_info(config, d, tmp_path / "lang").frame_shift_s == pytest.approx(0.02)
    (d / "frame_shift").write_text("ten ms\n")
    with pytest.raises(DataError, match="frame_shift: expected one positive number"):
        read_frame_shift(d)
