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
    before = {p.name: p.read_bytes() for p in (tmp_path / "dump").glob("*.ark")}
    wav = read_kv(d / "wav.scp")
    bad = sorted(wav)[4]
    with open(wav[bad], "wb") as f:
        f.write(b"this is not a wav file")
    for nj in (1, 2):
        with pytest.raises(DataError) as e:
            extract_feats(d, FBANK, tmp_path / "dump", nj=nj, progress=False)
        assert repr(bad) in str(e.value) and "wav.scp:5" in str(e.value)
        assert not (d / "feats.scp").exists() and not (d / "utt2num_frames").exists()
        # no partial archive is left; the complete archives of the earlier run are untouched
        # (data dirs made from it still read them)
        assert sorted(p.name for p in (tmp_path / "dump").iterdir()) == ["feats.1.ark", "feats.2.ark"]
        assert {p.name: p.read_bytes() for p in (tmp_path / "dump").glob("*.ark")} == before


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


# ---------------------------------------------------------------------- refusing bad input
def test_duplicate_wav_scp_or_segments_key_is_refused(tmp_path, make_data_dir_fixture):
    """Before: the second line silently won."""
    d = make_data_dir_fixture("data", num_spk=2, utts_per_spk=2)
    rows = (d / "wav.scp").read_text().splitlines()
    key, other = rows[1].split()[0], rows[2].split()[1]
    (d / "wav.scp").write_text("\n".join(rows[:2] + [f"{key} {other}"] + rows[2:]) + "\n")
    with pytest.raises(DataError, match=rf"wav.scp:3: duplicate key '{key}' \(first on line 2\)"):
        extract_feats(d, FBANK, tmp_path / "dump", progress=False)
    assert not (d / "feats.scp").exists()
    (d / "wav.scp").write_text("\n".join(rows) + "\n")
    reco = rows[0].split()[0]
    segs = {u: f"{u} 0 0.1" for u in read_kv(d / "utt2spk")}
    (d / "segments").write_text("".join(f"{u} {v}\n" for u, v in sorted(segs.items()))
                                + f"{reco} {reco} 0.1 0.2\n")
    with pytest.raises(DataError, match=rf"segments:5: duplicate key '{reco}' \(first on line 1\)"):
        extract_feats(d, FBANK, tmp_path / "dump", progress=False)


def test_segment_past_the_recording_end_is_truncated_within_tolerance_else_refused(tmp_path, make_data_dir_fixture):
    """Kaldi's extract-segments: an overshoot of at most 0.5 s is truncated (and counted), more is an error.
    Before: any end past the audio was cut silently."""
    import soundfile as sf
    d = make_data_dir_fixture("data", num_spk=1, utts_per_spk=2, text=False, caption=False, tags=False,
                              utt2dur=False)
    wav = read_kv(d / "wav.scp")
    dur = {r: sf.info(p).frames / sf.info(p).samplerate for r, p in wav.items()}
    r0, r1 = sorted(wav)
    u2s = {f"{r0}-a": "spk1", f"{r0}-b": "spk1", f"{r1}-a": "spk1"}
    segs = {f"{r0}-a": f"{r0} 0 0.1", f"{r0}-b": f"{r0} 0.1 {dur[r0] + 0.3:.3f}", f"{r1}-a": f"{r1} 0 0.1"}
    for name in ("utt2emotion", "utt2gender"):
        (d / name).unlink()
    write_kv(d / "segments", segs)
    write_kv(d / "utt2spk", u2s)
    write_kv(d / "spk2utt", {"spk1": " ".join(sorted(u2s))})
    summary = extract_feats(d, FBANK, tmp_path / "dump", progress=False)
    assert summary["truncated_segments"] == 1
    fe = build_frontend(FBANK)
    n = int(round((dur[r0] - 0.1) * 16000))
    assert _feats(d)[f"{r0}-b"].shape[0] == fe.num_frames(n)          # cut at the end of the recording
    segs[f"{r0}-b"] = f"{r0} 0.1 {dur[r0] + 0.8:.3f}"
    write_kv(d / "segments", segs)
    with pytest.raises(DataError, match=rf"'{r0}-b'.*ends 0.8\d\d s past the end of the recording"):
        extract_feats(d, FBANK, tmp_path / "dump", progress=False)
    assert not (d / "feats.scp").exists()


def test_truncated_wav_is_refused(tmp_path, make_data_dir_fixture):
    """Before: libsndfile returned the samples present and the utterance was extracted short."""
    d = make_data_dir_fixture("data", num_spk=1, utts_per_spk=2)
    wav = read_kv(d / "wav.scp")
    bad = sorted(wav)[1]
    raw = open(wav[bad], "rb").read()
    with open(wav[bad], "wb") as f:
        f.write(raw[: 44 + (len(raw) - 44) // 2])
    with pytest.raises(DataError, match=rf"wav.scp:2: utterance '{bad}'.*truncated WAV file: its header declares "
                                        rf"{len(raw) - 44} bytes of audio, the file holds {(len(raw) - 44) // 2}"):
        extract_feats(d, FBANK, tmp_path / "dump", progress=False)
    from parastyle.data.audio import wav_truncation
    assert wav_truncation(wav[sorted(wav)[0]]) is None


def test_dump_dir_with_whitespace_is_refused_up_front(tmp_path, make_data_dir_fixture):
    """Before: the archives were written and the validator then rejected feats.scp."""
    d = make_data_dir_fixture("data", num_spk=1, utts_per_spk=2)
    with pytest.raises(DataError, match="the path contains whitespace"):
        extract_feats(d, FBANK, tmp_path / "my dump", progress=False)
    assert not (tmp_path / "my dump").exists() and not (d / "feats.scp").exists()


def test_subset_never_reads_archives_rewritten_by_a_re_extraction(tmp_path, make_data_dir_fixture):
    """A subset shares its parent's archives. Re-extracting the parent (another front-end, or killed
    halfway) must not leave the subset reading other data at its recorded offsets."""
    from parastyle.data.dirops import split_data_dir, subset_data_dir
    d = make_data_dir_fixture("data", num_spk=2, utts_per_spk=3, lang_dir=tmp_path / "lang")
    dump = tmp_path / "dump"
    extract_feats(d, FBANK, dump, nj=2, progress=False)
    parent = _feats(d)
    sub = tmp_path / "sub"
    subset_data_dir(d, sub, last=3)                 # utterances of the second archive
    factors = {"emotion": ["angry", "happy", "neutral", "sad"]}
    ds = StyleDataset(sub, factors, use_feats=True)
    for i in range(len(ds)):
        assert np.array_equal(ds[i]["feats"].numpy(), parent[ds.utts[i]])
    assert validate_data_dir(sub, lang_dir=tmp_path / "lang") == []

    # a killed re-extraction (a failing utterance) leaves the old archives, so the subset still reads them
    wav = read_kv(d / "wav.scp")
    good = open(wav[sorted(wav)[5]], "rb").read()
    open(wav[sorted(wav)[5]], "wb").write(b"broken")
    with pytest.raises(DataError):
        extract_feats(d, FBANK, dump, nj=2, progress=False)
    ds = StyleDataset(sub, factors, use_feats=True)
    assert np.array_equal(ds[0]["feats"].numpy(), parent[ds.utts[0]])
    open(wav[sorted(wav)[5]], "wb").write(good)

    # the parent re-extracted with another front-end: the subset's offsets now point into other data
    extract_feats(d, dict(FBANK, num_mel_bins=10), dump, nj=2, progress=False)
    split = split_data_dir(sub, 1)[0]                # made from the stale subset: carries its record
    for stale in (sub, split):
        with pytest.raises(DataError, match=r"archive .*feats\.2\.ark changed since .* was written"):
            StyleDataset(stale, factors, use_feats=True)
        assert any("changed since" in p for p in validate_data_dir(stale, lang_dir=tmp_path / "lang"))
    assert StyleDataset(d, factors, use_feats=True)[0]["feats"].shape[1] == 10     # the parent itself is fine
    subset_data_dir(d, sub, last=3)                  # re-created from the re-extracted parent: reads again
    assert StyleDataset(sub, factors, use_feats=True)[0]["feats"].shape[1] == 10
    assert validate_data_dir(sub, lang_dir=tmp_path / "lang") == []


def test_cmvn_refuses_non_finite_features_and_stale_archives(tmp_path, make_data_dir_fixture):
    """Before: a NaN frame made every CMVN mean NaN, and a subset with a rewritten archive was averaged."""
    from parastyle.data.dirops import subset_data_dir
    from parastyle.features.cmvn import compute_data_dir_cmvn
    d = make_data_dir_fixture("data", num_spk=2, utts_per_spk=2)
    extract_feats(d, FBANK, tmp_path / "dump", progress=False)
    sub = tmp_path / "sub"
    subset_data_dir(d, sub, first=2)
    stats = compute_data_dir_cmvn(sub)
    assert stats.count == sum(m.shape[0] for u, m in _feats(d).items() if u in read_kv(sub / "utt2spk"))
    extract_feats(d, dict(FBANK, num_mel_bins=10), tmp_path / "dump", progress=False)
    with pytest.raises(DataError, match="changed since"):
        compute_data_dir_cmvn(sub)
    feats = {u: np.array(m) for u, m in _feats(d).items()}
    bad = sorted(feats)[2]
    feats[bad][1, 3] = np.inf
    kaldiio.save_ark(str(tmp_path / "x.ark"), feats, scp=str(d / "feats.scp"))
    (d / "feats_arks").unlink()
    with pytest.raises(DataError, match=f"features of '{bad}' hold 1 non-finite"):
        compute_data_dir_cmvn(d)
    assert not (d / "cmvn.ark").exists()
