"""parastyle.evaluate.best_of_n: candidates given as waveforms or paths, one prompt or per-subspace
prompts, ranked against cosines computed here one candidate at a time; refusals (front-end,
non-finite audio or weights, unknown prompt groups)."""
from __future__ import annotations

import kaldiio
import numpy as np
import pytest
import soundfile as sf
import torch
import torch.nn.functional as F
import yaml

from parastyle.data.collate import collate_batch
from parastyle.evaluate.best_of_n import BestOfN, rank_candidates, score_candidates
from parastyle.features.frontend import build_frontend
from parastyle.fileio import DataError, write_kv, write_list
from parastyle.train.checkpoint import load_model_from_exp

WORDS = ["a", "happy", "sad", "voice", "male", "female", "speaking"]
FACTORS = {"emotion": ["happy", "sad"], "gender": ["female", "male"]}
FBANK6 = {"type": "fbank", "sample_rate": 16000, "num_mel_bins": 6}


def _bert(path):
    from transformers import BertConfig, BertModel, BertTokenizer
    path.mkdir()
    (path / "vocab.txt").write_text("\n".join(["[PAD]", "[UNK]", "[CLS]", "[SEP]", "[MASK]"] + WORDS) + "\n")
    BertTokenizer(str(path / "vocab.txt")).save_pretrained(str(path))
    torch.manual_seed(0)
    BertModel(BertConfig(vocab_size=len(WORDS) + 5, hidden_size=12, num_hidden_layers=1, num_attention_heads=2,
                         intermediate_size=24, max_position_embeddings=32)).save_pretrained(str(path))
    return str(path)


def _train_dir(root):
    d = root / "train"
    d.mkdir(parents=True)
    rng = np.random.RandomState(0)
    utts = [f"s{i % 2}-u{i:02d}" for i in range(8)]
    kaldiio.save_ark(str(d / "feats.ark"), {u: rng.randn(12, 6).astype(np.float32) for u in sorted(utts)},
                     scp=str(d / "feats.scp"))
    write_kv(d / "utt2spk", {u: u.split("-")[0] for u in utts})
    write_kv(d / "spk2utt", {s: " ".join(sorted(u for u in utts if u.startswith(s))) for s in ("s0", "s1")})
    write_kv(d / "utt2num_frames", {u: "12" for u in utts})
    write_kv(d / "utt2emotion", {u: FACTORS["emotion"][i % 2] for i, u in enumerate(utts)})
    write_kv(d / "utt2gender", {u: FACTORS["gender"][(i // 2) % 2] for i, u in enumerate(utts)})
    write_kv(d / "utt2caption", {u: "a happy voice" for u in utts})
    fe = build_frontend(FBANK6)
    (d / "feats_conf.yaml").write_text(yaml.safe_dump(fe.to_config(), sort_keys=False))
    (d / "frame_shift").write_text(f"{fe.frame_shift_s}\n")
    for f, labs in FACTORS.items():
        write_list(root / "lang" / f"{f}.txt", labs)
    return d


@pytest.fixture(scope="module")
def parameta_exp(tmp_path_factory):
    from parastyle.train.config import load_config
    from parastyle.train.trainer import Trainer
    root = tmp_path_factory.mktemp("bon")
    train = _train_dir(root / "data")
    config = load_config(None, [
        ("model", {"name": "parameta", "meta_dim": 16, "subspace_dim": 8,
                   "encoder": {"name": "tdnn", "hidden": 16, "kernel_sizes": [3], "dilations": [1],
                               "output_dim": 16, "dropout": 0.0},
                   "text_encoder": {"path": _bert(root / "bert")}}),
        ("data.max_frames", 200), ("train.max_steps", 2), ("train.valid_interval", 2), ("train.ckpt_interval", 2),
        ("train.average_best", 1), ("train.progress", False), ("train.device", "cpu")])
    exp = root / "exp" / "parameta"
    Trainer(config, train, None, root / "data" / "lang", exp).run()
    return exp, root


def _waves():
    rng = np.random.RandomState(1)
    return [(f"c{i}", (0.1 * np.sin(np.arange(4000 + 700 * i) * (0.07 + 0.05 * i))
                       + 0.01 * rng.randn(4000 + 700 * i)).astype(np.float32)) for i in range(3)]


def _reference(exp, prompt, wav16k):
    """The cosine of one candidate computed here: fbank of the 16 kHz waveform, embed, per-subspace cosine."""
    model, _, _ = load_model_from_exp(exp)
    fe = build_frontend(FBANK6)
    batch = collate_batch([{"utt_id": "x", "feats": fe(wav16k), "labels": {}, "speaker": "x"}])
    with torch.no_grad():
        speech = model.embed(batch)
        out = {}
        for g, text in prompt.items():
            t = model.embed_text([text])[g][0]
            out[g] = float(F.normalize(speech[g][0], dim=-1) @ F.normalize(t, dim=-1))
    return out


def test_waveforms_and_paths_with_per_subspace_prompts_match_a_direct_computation(parameta_exp, tmp_path):
    import torchaudio.functional as AF
    exp, _ = parameta_exp
    waves = _waves()
    path = tmp_path / "c3.wav"
    sf.write(path, waves[0][1][::-1].copy(), 8000, subtype="FLOAT")
    cands = [(cid, w) for cid, w in waves] + [("c3", str(path))]
    prompt = {"emotion": "a sad voice", "gender": "a female voice"}
    ranked = score_candidates(exp, prompt, cands, sample_rate=8000)
    assert [r.rank for r in ranked] == [1, 2, 3, 4] and sorted(r.id for r in ranked) == ["c0", "c1", "c2", "c3"]
    refs = {cid: _reference(exp, prompt, AF.resample(torch.from_numpy(w), 8000, 16000)) for cid, w in waves}
    refs["c3"] = _reference(exp, prompt, AF.resample(torch.from_numpy(waves[0][1][::-1].copy()), 8000, 16000))
    for r in ranked:
        assert set(r.groups) == {"emotion", "gender"}
        for g in prompt:
            assert r.groups[g] == pytest.approx(refs[r.id][g], abs=1e-4), (r.id, g)
        assert r.score == pytest.approx(np.mean(list(refs[r.id].values())), abs=1e-4)
    expect = sorted(refs, key=lambda c: -np.mean(list(refs[c].values())))
    assert [r.id for r in ranked] == expect
    # one prompt for every subspace: the score is the mean over all text subspaces of that prompt
    one = BestOfN(exp).score("a happy male voice", cands, sample_rate=8000)
    ref1 = {cid: _reference(exp, dict.fromkeys(FACTORS, "a happy male voice"),
                            AF.resample(torch.from_numpy(w), 8000, 16000)) for cid, w in waves}
    for r in one:
        if r.id in ref1:
            assert r.score == pytest.approx(np.mean(list(ref1[r.id].values())), abs=1e-4)


def test_refusals(parameta_exp, tmp_path):
    exp, root = parameta_exp
    waves = _waves()
    ranker = BestOfN(exp)
    with pytest.raises(ValueError, match="prompt group 'accent' is not a text subspace"):
        ranker.score({"accent": "a voice"}, waves, sample_rate=8000)
    with pytest.raises(DataError, match="give its sample_rate"):
        ranker.score("a voice", waves)
    bad = waves[1][1].copy()
    bad[10] = np.nan
    with pytest.raises(DataError, match=r"candidate 'c1': 1 non-finite sample"):
        ranker.score("a voice", [waves[0], ("c1", bad)], sample_rate=8000)
    with pytest.raises(DataError, match="duplicate candidate id"):
        ranker.score("a voice", [waves[0], waves[0]], sample_rate=8000)
    # an explicit front-end that is not the recorded training one (same dim, other features)
    other = tmp_path / "logmel.yaml"
    other.write_text(yaml.safe_dump({"type": "logmel", "sample_rate": 16000, "n_fft": 400, "win_length": 400,
                                     "hop_length": 160, "n_mels": 6}))
    with pytest.raises(DataError, match=r"not the front-end the exp was trained on.*'fbank' \(training\) vs "
                                        r"'logmel' \(given\)"):
        BestOfN(exp, feats_conf=str(other))
    # the CLI reads a directory of wavs and writes the ranking
    cdir = tmp_path / "cands"
    cdir.mkdir()
    for cid, w in waves:
        sf.write(cdir / f"{cid}.wav", w, 8000, subtype="FLOAT")
    ranking = rank_candidates(exp, "a happy voice", cdir)
    direct = score_candidates(exp, "a happy voice", waves, sample_rate=8000)
    assert [c for c, _ in ranking] == [r.id for r in direct]
    assert [s for _, s in ranking] == pytest.approx([r.score for r in direct], abs=1e-5)


def test_non_finite_weights_are_refused(parameta_exp, tmp_path):
    from parastyle.train.checkpoint import load_checkpoint, save_checkpoint
    exp, _ = parameta_exp
    state = load_checkpoint(exp / "model.pt")
    name = next(k for k, v in state["model"].items() if k.startswith("subspace_proj") and v.dtype.is_floating_point)
    state["model"][name] = state["model"][name].clone()
    state["model"][name].view(-1)[0] = float("inf")
    save_checkpoint(exp / "inf.pt", state)
    with pytest.raises(DataError, match=f"model tensor '{name}' holds non-finite"):
        BestOfN(exp, checkpoint="inf.pt")


def test_eval_clap_and_eval_parameta_refuse_another_front_end_and_nan_features(parameta_exp, tmp_path):
    """Both evaluations read the test dir's features: another front-end of the same dim is refused
    naming both descriptions; a NaN feature stops with the utterance id."""
    import shutil

    from parastyle.evaluate import clap as eval_clap
    from parastyle.evaluate import parameta as eval_parameta
    from parastyle.fileio import read_kv
    exp, root = parameta_exp
    train = root / "data" / "train"
    test = tmp_path / "test"
    shutil.copytree(train, test)
    lang = root / "data" / "lang"
    res = eval_clap.evaluate(exp, test, lang_dir=lang, tag="test_ok")        # the training front-end: evaluated
    assert set(res["metrics"]) >= {"emotion", "gender"}
    (test / "feats_conf.yaml").write_text(yaml.safe_dump({"type": "logmel", "sample_rate": 16000, "n_fft": 400,
                                                          "win_length": 400, "hop_length": 160, "n_mels": 6}))
    for call in (lambda: eval_clap.evaluate(exp, test, lang_dir=lang),
                 lambda: eval_parameta.evaluate(exp, train, test, max_tsne=0, knn=2)):
        with pytest.raises(DataError, match=rf"{train / 'feats_conf.yaml'}.*'fbank' \(training\) vs 'logmel' \(test\)"):
            call()
    shutil.copy(train / "feats_conf.yaml", test / "feats_conf.yaml")
    feats = {u: np.array(kaldiio.load_mat(v)) for u, v in read_kv(test / "feats.scp").items()}
    bad = sorted(feats)[3]
    feats[bad][2, 0] = np.nan
    kaldiio.save_ark(str(test / "nan.ark"), feats, scp=str(test / "feats.scp"))
    for call in (lambda: eval_clap.evaluate(exp, test, lang_dir=lang),
                 lambda: eval_parameta.evaluate(exp, train, test, max_tsne=0, knn=2)):
        with pytest.raises(DataError, match=f"utterance '{bad}' is not finite"):
            call()
    (test / "utt2gender").write_text("")
    with pytest.raises(DataError, match="utt2gender: the file is empty"):
        eval_clap.evaluate(exp, test, lang_dir=lang, factors=["gender"])
    with pytest.raises(DataError, match="utt2gender: the file is empty"):
        eval_parameta.evaluate(exp, train, test, max_tsne=0, knn=2)
