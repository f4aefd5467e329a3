"""Speech and text tokenizers: k-means nearest centres vs a brute-force loop, save/load and fit; text units
round trip (multilingual sentencepiece); make_tokens writes utt2tokens for k-means and for a trained SSET exp."""
from __future__ import annotations

from pathlib import Path

import kaldiio
import numpy as np
import pytest
import torch

from parastyle.bin import make_tokens
from parastyle.fileio import DataError, read_kv
from parastyle.text.tokenizer import SentencePieceTokenizer, TokenizerError, train_sentencepiece
from parastyle.tokenizers.kmeans import KMeansTokenizer, fit_kmeans
from parastyle.tokenizers.speech_tokens import read_token_info


def test_kmeans_tokens_equal_brute_force():
    rng = np.random.default_rng(0)
    km = KMeansTokenizer(rng.standard_normal((7, 3)))
    x = rng.standard_normal((50, 3)).astype(np.float32)
    ref = [min(range(7), key=lambda k: float(((x[t] - km.centers[k]) ** 2).sum())) for t in range(50)]
    assert km.tokens(x, block=8).tolist() == ref
    assert np.array_equal(km.decode(ref), km.centers[ref])
    with pytest.raises(ValueError, match=r"features must be \(T, 3\)"):
        km.tokens(np.zeros((4, 5)))


def test_kmeans_fit_recovers_clusters_and_round_trips(tmp_path):
    rng = np.random.default_rng(1)
    true = np.array([[0, 0], [10, 0], [0, 10], [10, 10]], dtype=np.float32)
    lab = rng.integers(0, 4, 2000)
    x = true[lab] + 0.3 * rng.standard_normal((2000, 2)).astype(np.float32)
    km = fit_kmeans([x[:1000], x[1000:]], 4, seed=0)
    tok = km.tokens(x)
    # the clustering equals the truth up to a relabelling
    mapping = {int(l): int(t) for l, t in zip(lab[:50], tok[:50])}
    assert len(set(mapping.values())) == 4 and all(mapping[int(l)] == int(t) for l, t in zip(lab, tok))
    km.save(tmp_path / "km.npz")
    km2 = KMeansTokenizer.load(tmp_path / "km.npz")
    assert np.array_equal(km2.centers, km.centers) and np.array_equal(km2.tokens(x), tok)
    with pytest.raises(DataError, match="fewer than the 8"):
        fit_kmeans([x[:5]], 8)
    with pytest.raises(DataError, match="not found"):
        KMeansTokenizer.load(tmp_path / "none.npz")


def test_text_units_round_trip_multilingual(tmp_path):
    texts = {f"u{i}": t for i, t in enumerate(
        ["the cat sat on the mat", "der hund lief schnell", "le chat est noir", "el perro come pan",
         "我们今天去公园", "他喜欢喝茶", "what a lovely day", "ich trinke gern tee"] * 3)}
    toks = train_sentencepiece(texts, tmp_path, vocab_size=40, model_type="unigram", model_prefix="text_units")
    sp = SentencePieceTokenizer(tmp_path / "text_units.model", toks)
    for u, t in texts.items():
        ids = sp.encode(t, u)
        assert ids and all(1 <= i < len(toks) for i in ids)
        assert sp.decode(ids) == t
    with pytest.raises(TokenizerError, match="utterance 'x'"):
        sp.encode("ωμέγα", "x")


def _data_dir(root: Path, n=6, dim=4):
    rng = np.random.default_rng(2)
    d = root / "data"
    d.mkdir()
    utts = [f"s{i % 2}-{i:02d}" for i in range(n)]
    utts.sort()
    (d / "utt2spk").write_text("".join(f"{u} {u.split('-')[0]}\n" for u in utts))
    (d / "spk2utt").write_text("".join(f"s{s} {' '.join(u for u in utts if u.startswith(f's{s}-'))}\n" for s in (0, 1)))
    mats = {}
    with kaldiio.WriteHelper(f"ark,scp:{d}/feats.ark,{d}/feats.scp") as w:
        for u in utts:
            mats[u] = rng.standard_normal((int(rng.integers(8, 15)), dim)).astype(np.float32)
            w[u] = mats[u]
    (d / "utt2num_frames").write_text("".join(f"{u} {m.shape[0]}\n" for u, m in mats.items()))
    return d, mats


def test_make_tokens_kmeans(tmp_path):
    d, mats = _data_dir(tmp_path)
    assert make_tokens.main(["--data", str(d), "--kmeans", str(tmp_path / "km.npz"), "--kmeans_fit", "5"]) == 0
    km = KMeansTokenizer.load(tmp_path / "km.npz")
    got = read_kv(d / "kmeans" / "utt2tokens")
    for u, m in mats.items():
        assert [int(t) for t in got[u].split()] == km.tokens(m).tolist()
        assert read_kv(d / "kmeans" / "utt2num_tokens")[u] == str(m.shape[0])
    info = read_token_info(d, "kmeans")
    assert info["type"] == "kmeans" and info["vocab_size"] == 5 and info["num_utts"] == 6
    assert not (d / ".kmeans.tmp").exists()
    assert make_tokens.main(["--data", str(d)]) == 2


def test_make_tokens_sset_exp(tmp_path):
    from parastyle.train.config import load_config
    from parastyle.train.trainer import Trainer
    from parastyle.train.checkpoint import load_model_from_exp

    d, mats = _data_dir(tmp_path, n=8)
    lang = tmp_path / "lang"
    lang.mkdir()
    c = load_config(None)
    c["model"] = {"name": "sset", "hidden": 16, "num_blocks": 1, "stride": 2, "code_dim": 4, "num_codebooks": 2,
                  "codebook_size": 8}
    c["data"].update({"factors": [], "max_frames": 100})
    c["train"].update({"max_steps": 3, "device": "cpu", "valid_interval": 3, "ckpt_interval": 3, "progress": False})
    c["valid"]["metric"] = "recon_mse"
    assert Trainer(c, d, d, lang, tmp_path / "exp").run() == "done"
    assert make_tokens.main(["--data", str(d), "--sset", str(tmp_path / "exp")]) == 0
    model, _, _ = load_model_from_exp(tmp_path / "exp")
    got = read_kv(d / "sset" / "utt2tokens")
    for u, m in mats.items():
        x = torch.from_numpy(m)[None]
        codes, clen = model.codes(x, torch.tensor([m.shape[0]]))
        assert [int(t) for t in got[u].split()] == model.tokens(codes[0, : int(clen[0])]).tolist()
        assert int(read_kv(d / "sset" / "utt2num_tokens")[u]) == 2 * ((m.shape[0] + 1) // 2)
    assert read_token_info(d, "sset")["vocab_size"] == 16


def test_make_tokens_text_modes(tmp_path):
    (tmp_path / "text").write_text("u1 ab c\nu2 我们 b\n", encoding="utf-8")
    assert make_tokens.main(["--text", str(tmp_path / "text"), "--lang_dir", str(tmp_path / "lang")]) == 0
    assert (tmp_path / "lang" / "tokens.txt").read_text(encoding="utf-8").split() == \
        ["<blank>", "<space>", "a", "b", "c", "们", "我"]
    with pytest.raises(SystemExit):
        make_tokens.main(["--lang_dir", str(tmp_path / "lang")])
