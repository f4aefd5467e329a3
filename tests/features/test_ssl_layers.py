"""SSL layer dumping: the dumped matrices are the SSL model's layer outputs, a VIB stage-1 model with
the ``dumped`` front-end on them equals one with the ``ssl`` front-end on the raw audio, a failing
utterance is named and leaves no feats.scp, and the CLI / layer selection work."""
from __future__ import annotations

import kaldiio
import numpy as np
import pytest
import soundfile as sf
import torch
import yaml

from parastyle.bin.dump_ssl_layers import main as dump_main
from parastyle.data.audio import load_audio
from parastyle.data.collate import collate_batch
from parastyle.data.datadir import validate_data_dir
from parastyle.data.dataset import StyleDataset
from parastyle.features.frontend import build_frontend
from parastyle.features.ssl_layers import SSLLayerDumper, dump_ssl_layers, parse_layers
from parastyle.fileio import DataError, read_kv
from parastyle.models import build_model
from parastyle.models.task import TaskInfo
from parastyle.nn.encoders.ssl import SSLLayerExtractor, build_ssl_model, load_ssl_model, save_ssl_model
from parastyle.text import build_char_vocab, write_tokens
from parastyle.train.build import build_task_info

CONV = [(8, 10, 5), (8, 3, 2), (8, 2, 2)]   # 20 samples per frame, 30 samples for the first frame


def tiny_arch(wavlm: bool = False, num_layers: int = 3):
    conf = dict(extractor_mode="layer_norm", extractor_conv_layer_config=CONV, extractor_conv_bias=False,
                encoder_embed_dim=16, encoder_projection_dropout=0.0, encoder_pos_conv_kernel=4,
                encoder_pos_conv_groups=2, encoder_num_layers=num_layers, encoder_num_heads=2,
                encoder_attention_dropout=0.0, encoder_ff_interm_features=24, encoder_ff_interm_dropout=0.0,
                encoder_dropout=0.0, encoder_layer_norm_first=True, encoder_layer_drop=0.0)
    if wavlm:
        conf.update(encoder_num_buckets=8, encoder_max_distance=20)
    return conf


def _ssl_file(tmp_path, wavlm=False, normalize=False, seed=0):
    torch.manual_seed(seed)
    arch = tiny_arch(wavlm)
    path = tmp_path / ("wavlm.pt" if wavlm else "w2v.pt")
    save_ssl_model(build_ssl_model(arch).eval(), arch, path, normalize_waveform=normalize)
    return path


def _dumped(d):
    return {u: kaldiio.load_mat(e) for u, e in read_kv(d / "feats.scp").items()}


@pytest.mark.parametrize("wavlm,normalize", [(False, False), (False, True), (True, True)])
def test_dumped_layers_equal_ssl_model_outputs(tmp_path, make_data_dir_fixture, wavlm, normalize):
    """Layers 1..N-1 are the model's block outputs, layer N its ``forward`` output (final LayerNorm
    of this pre-LN model included); waveforms are normalised for every bundle (the model file's own
    flag says the opposite of what is used here), unless normalize_waveform=False."""
    d = make_data_dir_fixture("data", num_spk=2, utts_per_spk=3, lang_dir=tmp_path / "lang")
    ssl = _ssl_file(tmp_path, wavlm, normalize=not normalize)
    kw = {} if normalize else {"normalize_waveform": False}
    s = dump_ssl_layers(d, ssl, tmp_path / "dump", layers="all", device="cpu", progress=False, **kw)
    assert s["num_utts"] == 6 and s["layers"] == [1, 2, 3] and s["layer_dim"] == 16 and s["dim"] == 48
    feats = _dumped(d)
    assert list(feats) == sorted(read_kv(d / "utt2spk"))
    frames = {u: int(n) for u, n in read_kv(d / "utt2num_frames").items()}
    assert frames == {u: m.shape[0] for u, m in feats.items()} and s["num_frames"] == sum(frames.values())
    assert all(m.dtype == np.float32 and m.shape[1] == 48 for m in feats.values())
    assert sorted(p.name for p in (tmp_path / "dump").iterdir()) == ["ssl_layers.ark", "ssl_layers.yaml"]
    meta = yaml.safe_load((tmp_path / "dump" / "ssl_layers.yaml").read_text())
    assert meta["frontend"] == {"type": "dumped", "num_layers": 3} and meta["layers"] == [1, 2, 3]
    assert meta["frame_shift_s"] == pytest.approx(20 / 16000) and meta["normalize_waveform"] is normalize
    assert validate_data_dir(d, lang_dir=tmp_path / "lang") == []
    # reference: torchaudio's own extract_features on the whole utterance (no padding)
    model = load_ssl_model(ssl)
    wavs = read_kv(d / "wav.scp")
    for utt in (sorted(feats)[0], sorted(feats)[-1]):
        wav = load_audio(utt, wavs[utt], 16000)
        x = wav[None]
        if normalize:
            x = (x - x.mean()) / torch.sqrt(x.var(unbiased=False) + 1e-5)
        with torch.no_grad():
            ref, _ = model.extract_features(x)
            last, _ = model(x)
        assert feats[utt].shape[0] == ref[0].shape[1] == (wav.numel() - 30) // 20 + 1
        for i in range(2):
            np.testing.assert_allclose(feats[utt][:, 16 * i:16 * (i + 1)], ref[i][0].numpy(), atol=1e-5, rtol=1e-5)
        np.testing.assert_allclose(feats[utt][:, 32:48], last[0].numpy(), atol=1e-5, rtol=1e-5)
        assert np.abs(feats[utt][:, 32:48] - ref[2][0].numpy()).max() > 1e-2     # not the raw last block


def test_vib_dumped_frontend_equals_ssl_frontend(tmp_path, make_data_dir_fixture):
    d = make_data_dir_fixture("data", num_spk=2, utts_per_spk=3)
    ssl = _ssl_file(tmp_path)
    dump_ssl_layers(d, ssl, tmp_path / "dump", progress=False)
    write_tokens(tmp_path / "tokens.txt", build_char_vocab(read_kv(d / "text")))
    # the dumped model's task comes from the data dir, as the trainer builds it
    task_dumped = build_task_info({"data": {"feats": True, "frontend": None, "factors": []}}, d, tmp_path / "lang")
    assert task_dumped.feat_dim == 48
    base = {"name": "vib_stage1", "latent_dim": 4, "token_list": str(tmp_path / "tokens.txt")}
    torch.manual_seed(0)
    m_ssl = build_model(dict(base, frontend={"type": "ssl", "path": str(ssl)}),
                        TaskInfo(feat_dim=1, sample_rate=16000, frame_shift_s=1 / 16000))
    m_dumped = build_model(dict(base, frontend={"type": "dumped", "num_layers": 3}), task_dumped)
    with torch.no_grad():                                   # non-uniform layer weights, so their order matters
        m_ssl.layer_weights.logits.copy_(torch.tensor([0.5, -1.0, 2.0]))
    m_dumped.load_state_dict(m_ssl.state_dict())            # same weights; the SSL ones are not in the state dict
    m_ssl.eval(), m_dumped.eval()
    raw = StyleDataset(d, {}, use_feats=False, frontend=build_frontend({"type": "raw", "sample_rate": 16000}))
    dumped = StyleDataset(d, {}, use_feats=True)
    assert raw.utts == dumped.utts
    b_raw = collate_batch([raw[i] for i in range(len(raw))])
    b_dumped = collate_batch([dumped[i] for i in range(len(dumped))])
    e_ssl, e_dumped = m_ssl.embed(b_raw), m_dumped.embed(b_dumped)
    assert torch.equal(e_ssl["mask"], e_dumped["mask"])
    mask = e_dumped["mask"]
    for key in ("z_textual", "original"):
        assert torch.allclose(e_ssl[key][mask], e_dumped[key][mask], atol=1e-5), key
    assert m_ssl.predict(b_raw)["token_ids"] == m_dumped.predict(b_dumped)["token_ids"]


def test_corrupt_wav_is_named_and_leaves_no_scp(tmp_path, make_data_dir_fixture):
    d = make_data_dir_fixture("data", num_spk=2, utts_per_spk=3)
    ssl = _ssl_file(tmp_path)
    dump_ssl_layers(d, ssl, tmp_path / "dump", progress=False)
    (d / "cmvn.ark").write_bytes(b"stale")                       # derived from the features being replaced
    (d / "feats_conf.yaml").write_text("type: fbank\n")
    wavs = read_kv(d / "wav.scp")
    bad = sorted(wavs)[4]
    with open(wavs[bad], "wb") as f:
        f.write(b"this is not a wav file")
    with pytest.raises(DataError) as e:
        dump_ssl_layers(d, ssl, tmp_path / "dump", progress=False)
    assert repr(bad) in str(e.value) and f"{d}/wav.scp:5" in str(e.value)
    for name in ("feats.scp", "utt2num_frames", "cmvn.ark", "feats_conf.yaml"):
        assert not (d / name).exists(), name
    assert list((tmp_path / "dump").iterdir()) == []               # no partial archive, no metadata
    # the CLI reports the same and fails
    rc = dump_main(["--data", str(d), "--ssl_path", str(ssl), "--dump", str(tmp_path / "dump"),
                    "--device", "cpu", "--progress", "off"])
    assert rc == 1 and not (d / "feats.scp").exists()


def test_too_short_utterance_is_named(tmp_path, make_data_dir_fixture):
    d = make_data_dir_fixture("data", num_spk=1, utts_per_spk=3)
    ssl = _ssl_file(tmp_path)
    dumper = SSLLayerDumper(SSLLayerExtractor(load_ssl_model(ssl)), [1, 3])
    assert dumper.min_samples == 30 and dumper.dim == 32
    lens = dumper.extractor.frame_lengths(torch.tensor([29, 30, 49, 50]))
    assert lens.tolist() == [0, 1, 1, 2]
    assert dumper(torch.randn(30)).shape == (1, 32)
    wavs = read_kv(d / "wav.scp")
    short = sorted(wavs)[1]
    sf.write(wavs[short], np.zeros(29, dtype=np.float32), 16000, subtype="PCM_16")
    with pytest.raises(DataError, match=rf"wav.scp:2: utterance {short!r}.*too short.*need at least 30"):
        dump_ssl_layers(d, ssl, tmp_path / "dump", progress=False)
    assert not (d / "feats.scp").exists()


def test_cli_layer_subset(tmp_path, make_data_dir_fixture, capsys):
    d_all = make_data_dir_fixture("all", num_spk=1, utts_per_spk=3)
    d_sub = make_data_dir_fixture("sub", num_spk=1, utts_per_spk=3)
    ssl = _ssl_file(tmp_path, wavlm=True)
    dump_ssl_layers(d_all, ssl, tmp_path / "dump_all", progress=False)
    rc = dump_main(["--data", str(d_sub), "--ssl_path", str(ssl), "--dump", str(tmp_path / "dump_sub"),
                    "--layers", "3,1", "--device", "cpu", "--progress", "off"])
    assert rc == 0
    assert "num_layers: 2" in capsys.readouterr().err
    full, sub = _dumped(d_all), _dumped(d_sub)
    assert list(full) == list(sub)
    for u in full:
        assert sub[u].shape == (full[u].shape[0], 32)
        np.testing.assert_array_equal(sub[u], np.concatenate([full[u][:, 0:16], full[u][:, 32:48]], axis=1))
    meta = yaml.safe_load((tmp_path / "dump_sub" / "ssl_layers.yaml").read_text())
    assert meta["layers"] == [1, 3] and meta["feat_dim"] == 32
    # a bad layer list fails before anything is removed or written
    rc = dump_main(["--data", str(d_sub), "--ssl_path", str(ssl), "--dump", str(tmp_path / "dump_sub"),
                    "--layers", "0,2", "--device", "cpu"])
    assert rc == 1 and "there is no layer 0" in capsys.readouterr().err
    assert (d_sub / "feats.scp").is_file()


def test_parse_layers():
    assert parse_layers("all", 4) == parse_layers(None, 4) == [1, 2, 3, 4]
    assert parse_layers("3, 1,3", 4) == [1, 3]
    assert parse_layers("1-3,4", 4) == [1, 2, 3, 4]
    assert parse_layers([2], 4) == [2]
    for bad, msg in (("5", "out of range"), ("0", "no layer 0"), ("a", "bad item"), ("3-1", "empty range"),
                     ("", "bad item")):
        with pytest.raises(ValueError, match=msg):
            parse_layers(bad, 4)


def test_subset_of_a_dump_refuses_the_rewritten_archive(tmp_path, make_data_dir_fixture):
    """A subset shares the dump's archive; dumping the parent again (another SSL model) rewrites it, and
    the subset must then refuse to read it instead of returning other utterances' frames."""
    from parastyle.data.dirops import subset_data_dir
    d = make_data_dir_fixture("data", num_spk=2, utts_per_spk=2)
    dump_ssl_layers(d, _ssl_file(tmp_path, seed=0), tmp_path / "dump", progress=False)
    sub = tmp_path / "sub"
    subset_data_dir(d, sub, last=2)
    before = _dumped(d)
    ds = StyleDataset(sub, {}, use_feats=True)
    assert np.array_equal(ds[0]["feats"].numpy(), before[ds.utts[0]])
    other = tmp_path / "other"
    other.mkdir()
    dump_ssl_layers(d, _ssl_file(other, seed=1), tmp_path / "dump", progress=False)
    with pytest.raises(DataError, match="changed since"):
        StyleDataset(sub, {}, use_feats=True)
    assert any("changed since" in p for p in validate_data_dir(sub, no_wav=False))
