"""Synthesis library + CLI on a tiny world: style vectors against the style model itself,
manipulation touches only its slice, the synthesis dir contract, determinism for a seed,
candidates, copy synthesis, and clear errors for bad prompts / exp dirs."""
import sys
from pathlib import Path

import kaldiio
import numpy as np
import pytest
import soundfile as sf
import torch
import torch.nn.functional as F

sys.path.insert(0, str(Path(__file__).parent))
from tts_world import FE, FACTORS, make_world  # noqa: E402

from parastyle.bin.synthesize import main as synthesize  # noqa: E402
from parastyle.evaluate.synthesis import StyleEncoder, Synthesizer  # noqa: E402
from parastyle.fileio import DataError, read_kv  # noqa: E402


@pytest.fixture(scope="module")
def world(tmp_path_factory):
    return make_world(tmp_path_factory.mktemp("tts") / "w")


def test_style_vectors_are_layernormed_subspaces_of_the_style_model(world):
    from parastyle.features.frontend import build_frontend
    from parastyle.data.audio import load_audio
    from parastyle.train.checkpoint import load_model_from_exp
    model, _, _ = load_model_from_exp(world["style_exp"])
    fe = build_frontend(dict(FE))
    scp = read_kv(world["data"] / "style.scp")
    wavs = read_kv(world["data"] / "wav.scp")
    assert set(scp) == set(wavs)
    for utt in list(wavs)[:3]:
        feats = fe(load_audio(utt, wavs[utt], 22050))[None]
        with torch.no_grad():
            emb = model.embed({"feats": feats, "mask": torch.ones(1, feats.shape[1], dtype=torch.bool)})
        ref = torch.cat([F.layer_norm(emb[f][0], (8,)) for f in model.factors])
        got = torch.from_numpy(kaldiio.load_mat(scp[utt]).copy()).reshape(-1)
        torch.testing.assert_close(got, ref, atol=1e-4, rtol=1e-4)


def test_manipulation_changes_only_the_target_slice(world):
    enc = StyleEncoder(world["style_exp"])
    v = enc.from_text(["a happy female voice speaking english", "a sad male voice speaking german"])
    m = enc.manipulate(v, "gender", "male")
    s, e = enc.slices["gender"]
    assert (s, e) == (8 * enc.factors.index("gender"), 8 * enc.factors.index("gender") + 8)
    torch.testing.assert_close(m[:, :s], v[:, :s])
    torch.testing.assert_close(m[:, e:], v[:, e:])
    proto = enc.model.prototypes.prototypes("gender")[FACTORS["gender"].index("male")]
    ref = (proto - proto.mean()) / torch.sqrt(proto.var(unbiased=False) + 1e-5)
    torch.testing.assert_close(m[0, s:e], ref, atol=1e-5, rtol=1e-5)
    # the same LayerNorm as model.manipulate followed by the inference LayerNorm
    sub = {f: v[:, a:b] for f, (a, b) in enc.slices.items()}
    viamodel = enc.model.manipulate(sub, "gender", "male")["gender"]
    torch.testing.assert_close(F.layer_norm(viamodel, (8,)), m[:, s:e], atol=1e-3, rtol=1e-3)  # LayerNorm eps
    with pytest.raises(DataError, match="unknown gender class"):
        enc.manipulate(v, "gender", "robot")
    with pytest.raises(DataError, match="unknown factor"):
        enc.manipulate(v, "age", "old")


def _read_out(out):
    return {name: read_kv(out / name) for name in ("wav.scp", "utt2spk", "text", "utt2prompt")}


def test_cli_text_prompt_is_deterministic_and_writes_the_contract(world, tmp_path, capsys):
    args = ["--tts_exp", str(world["tts_exp"]), "--text", "hello friend", "--lang", "en",
            "--style_text", "a sad male voice speaking english", "--num_candidates", "3", "--seed", "7"]
    assert synthesize(args + ["--out", str(tmp_path / "a")]) == 0
    assert "RTF" in capsys.readouterr().out
    assert synthesize(args + ["--out", str(tmp_path / "b")]) == 0
    assert synthesize(args[:-1] + ["8", "--out", str(tmp_path / "c")]) == 0
    a, b, c = (tmp_path / x for x in "abc")
    ta = _read_out(a)
    assert sorted(ta["wav.scp"]) == ["synth-c0", "synth-c1", "synth-c2"]
    assert read_kv(a / "utt2group") == {f"synth-c{k}": "synth" for k in range(3)}
    assert ta["utt2prompt"]["synth-c0"] == "text a sad male voice speaking english"
    assert read_kv(a / "utt2language")["synth-c0"] == "en"
    for k in range(3):
        wa, sr = sf.read(ta["wav.scp"][f"synth-c{k}"])
        wb, _ = sf.read(read_kv(b / "wav.scp")[f"synth-c{k}"])
        assert sr == 22050 and np.array_equal(wa, wb)
        assert len(wa) % 256 == 0
    wa0, _ = sf.read(ta["wav.scp"]["synth-c0"])
    wa1, _ = sf.read(ta["wav.scp"]["synth-c1"])
    wc0, _ = sf.read(read_kv(c / "wav.scp")["synth-c0"])
    assert not (len(wa0) == len(wa1) and np.array_equal(wa0, wa1))        # candidates differ
    assert not (len(wa0) == len(wc0) and np.array_equal(wa0, wc0))        # another seed differs
    styles = read_kv(a / "style.scp")
    enc = StyleEncoder(world["style_exp"])
    ref = enc.from_text(["a sad male voice speaking english"])[0]
    torch.testing.assert_close(torch.from_numpy(kaldiio.load_mat(styles["synth-c0"]).copy()).reshape(-1), ref,
                               atol=1e-5, rtol=1e-5)
    conf = (a / "synth_conf.yaml").read_text()
    assert "temperature_duration: 0.3" in conf and "seed: 7" in conf
    assert not any(p.name.startswith(".") for p in tmp_path.iterdir())     # no temp dir left


def test_data_dir_prompts_targets_and_copy_synthesis(world, tmp_path):
    d = world["data"]
    out = tmp_path / "manip"
    assert synthesize(["--tts_exp", str(world["tts_exp"]), "--out", str(out), "--data", str(d),
                       "--prompt", "manipulated", "--manipulate", "emotion=*"]) == 0
    emo = read_kv(d / "utt2emotion")
    got = read_kv(out / "utt2emotion")
    assert got == {u: ("sad" if e == "happy" else "happy") for u, e in emo.items()}
    assert read_kv(out / "utt2gender") == read_kv(d / "utt2gender")
    assert read_kv(out / "utt2ref") == {u: u for u in emo}
    assert read_kv(out / "utt2prompt")["spkA-00"] == f"manipulated spkA-00 emotion={got['spkA-00']}"
    assert read_kv(out / "text") == read_kv(d / "text")
    from parastyle.data.datadir import validate_data_dir
    # a synthesis dir is a valid Kaldi data dir (utt2prompt / utt2ref / utt2group are not factor files)
    assert validate_data_dir(out, no_feats=True) == []
    # copy synthesis: reference durations -> exactly the reference number of frames
    cs = tmp_path / "copy"
    assert synthesize(["--tts_exp", str(world["tts_exp"]), "--out", str(cs), "--data", str(d), "--prompt", "speech",
                       "--copy_synthesis"]) == 0
    frames = read_kv(d / "utt2num_frames")
    for u, w in read_kv(cs / "wav.scp").items():
        assert sf.info(w).frames == int(frames[u]) * 256
    text = tmp_path / "textp"
    assert synthesize(["--tts_exp", str(world["tts_exp"]), "--out", str(text), "--data", str(d), "--prompt", "text",
                       "--max_utts", "2"]) == 0
    assert read_kv(text / "utt2prompt")["spkA-00"] == "text " + read_kv(d / "utt2caption")["spkA-00"]


def test_bad_inputs_give_clear_errors(world, tmp_path, caplog):
    base = ["--tts_exp", str(world["tts_exp"]), "--out", str(tmp_path / "x")]
    bad_wav = tmp_path / "bad.wav"
    bad_wav.write_bytes(b"not a wav")
    assert synthesize(base + ["--text", "hello", "--lang", "en", "--style_wav", str(bad_wav)]) == 1
    assert "bad.wav" in caplog.text
    caplog.clear()
    assert synthesize(base + ["--text", "hello", "--lang", "xx", "--style_text", "a voice"]) == 1
    assert "language 'xx' is not supported" in caplog.text
    caplog.clear()
    assert synthesize(base + ["--text", "  ", "--lang", "en", "--style_text", "a voice"]) == 1
    assert "empty text" in caplog.text
    caplog.clear()
    # a TTS exp that is not a TTS exp, a style exp that is not a style exp
    assert synthesize(["--tts_exp", str(world["style_exp"]), "--out", str(tmp_path / "y"), "--text", "hi",
                       "--lang", "en", "--style_text", "a voice"]) == 1
    assert "not a TTS acoustic model" in caplog.text
    with pytest.raises(DataError, match="a style exp must be"):
        StyleEncoder(world["tts_exp"])
    with pytest.raises(DataError, match="trained on style vectors of"):
        Synthesizer(world["tts_exp"], style_exp=str(tmp_path))
    assert not (tmp_path / "x").exists()


def test_adversarial_acoustic_model_trains_in_phases_resumes_exactly_and_synthesizes(world, tmp_path):
    """``model.adversarial`` turns the acoustic model into a two-phase model of the one trainer: one
    optimizer per phase, every phase's state in the checkpoints, an interrupted run resumes to the
    same weights, and the exp synthesizes like any other."""
    from tts_world import tts_config
    from parastyle.train.checkpoint import checkpoint_name, load_checkpoint
    from parastyle.train.trainer import Trainer
    conf = tts_config(world["lang"], world["style_exp"], 4)
    conf["model"]["adversarial"] = {"weight": 0.5, "fm_weight": 1.0, "segment_frames": 16, "channels": [4, 8, 8]}
    adam = {"name": "adam", "lr": 1e-3}
    conf["optim"] = {"generator": dict(adam), "discriminator": dict(adam, lr=2e-3)}
    conf["train"].update(ckpt_interval=1, keep_last=5)
    import yaml
    from parastyle.train.config import load_config
    (tmp_path / "adv.yaml").write_text(yaml.safe_dump(conf))
    full_conf = load_config(str(tmp_path / "adv.yaml"))
    args = (world["data"], world["data"], world["lang"])
    assert Trainer(full_conf, *args, tmp_path / "full").run() == "done"
    assert Trainer(full_conf, *args, tmp_path / "part").run(stop_after_steps=3) == "stopped"
    assert Trainer(full_conf, *args, tmp_path / "part").run() == "done"
    a = load_checkpoint(tmp_path / "full" / "checkpoints" / checkpoint_name(4))
    b = load_checkpoint(tmp_path / "part" / "checkpoints" / checkpoint_name(4))
    assert any(k.startswith("discriminator.") for k in a["model"])
    assert a["model"].keys() == b["model"].keys() and all(torch.equal(a["model"][k], b["model"][k]) for k in a["model"])
    syn = Synthesizer(tmp_path / "full")
    reqs = syn.requests_for_text("hello friend", "en", style_text="a sad male voice speaking english")
    syn.run(reqs, tmp_path / "out", seed=0)
    wav, sr = sf.read(read_kv(tmp_path / "out" / "wav.scp")["synth"])
    assert sr == 22050 and len(wav) > 0 and len(wav) % 256 == 0


def test_reference_encoder_model_takes_the_prompt_recordings_log_mel(world, tmp_path):
    """A ``reference_encoder`` acoustic model gets the log-mel of each speech prompt (the training front-end on
    its wav, the same matrix as the data dir's stage-3 features); text and manipulated prompts get none (the
    model's prior latent), and every prompt type synthesizes."""
    import yaml
    from tts_world import tts_config
    from parastyle.bin.train import main as train
    conf = tts_config(world["lang"], world["style_exp"], 2)
    conf["model"]["reference_encoder"] = {"dim": 3, "channels": 4, "layers": 1}
    (tmp_path / "ref.yaml").write_text(yaml.safe_dump(conf))
    exp = tmp_path / "exp"
    assert train(["--config", str(tmp_path / "ref.yaml"), "--train_data", str(world["data"]), "--valid_data",
                  str(world["data"]), "--lang_dir", str(world["lang"]), "--exp", str(exp)]) in (0, None)
    syn = Synthesizer(exp)
    d = world["data"]
    feats = read_kv(d / "feats.scp")
    speech = syn.requests_for_data(d, prompt="speech")
    for r in speech:
        np.testing.assert_allclose(r.reference.numpy(), kaldiio.load_mat(feats[r.utt]), atol=1e-5)
    assert all(r.reference is None for r in syn.requests_for_data(d, prompt="text"))
    assert all(r.reference is None for r in syn.requests_for_data(d, prompt="manipulated", manipulate="emotion=*"))
    wav = read_kv(d / "wav.scp")[speech[0].utt]
    (one,) = syn.requests_for_text("hello friend", "en", style_wav=wav)
    np.testing.assert_allclose(one.reference.numpy(), kaldiio.load_mat(feats[speech[0].utt]), atol=1e-5)
    assert syn.requests_for_text("hello friend", "en", style_wav=wav, manipulate="emotion=happy")[0].reference is None
    summary = syn.run(speech[:2] + [one], tmp_path / "out", seed=0, reference_weight=0.5)
    assert len(read_kv(tmp_path / "out" / "wav.scp")) == 3
    assert summary["reference_weight"] == 0.5 and summary["references"] == 3
