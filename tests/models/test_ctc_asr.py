"""CTC ASR judge: CTC loss against brute-force path enumeration, padding, decoding, training and transcribe()."""
from __future__ import annotations

import itertools
import math

import pytest
import torch

from parastyle.fileio import DataError, read_kv
from parastyle.metrics.asr import ctc_collapse
from parastyle.models.ctc_asr import CTCASR, subsampled_lengths
from parastyle.text import CharTokenizer, TokenizerError, build_char_vocab, write_tokens

TOKENS = ["<blank>", "<space>", "a", "b"]


def _model(**kw):
    torch.manual_seed(0)
    kw.setdefault("num_layers", 1)
    return CTCASR(6, CharTokenizer(TOKENS), hidden=8, dropout=0.0, **kw).eval()


def _batch(feats, lens, texts):
    mask = torch.arange(feats.shape[1])[None, :] < lens[:, None]
    return {"feats": feats * mask.unsqueeze(-1), "mask": mask, "text": texts,
            "utt_ids": [f"u{i}" for i in range(len(texts))]}


def test_ctc_loss_equals_brute_force_sum_over_alignments():
    m = _model()
    feats = torch.randn(2, 6, 6)
    lens = torch.tensor([6, 5])
    batch = _batch(feats, lens, ["ab", "a a"][:1] + ["b"])
    out = m(batch)
    logp, n = m.log_probs(batch)
    assert n.tolist() == subsampled_lengths(lens).tolist() == [3, 3]
    targets = [[2, 3], [3]]
    total = 0.0
    for b in range(2):
        p = 0.0
        for path in itertools.product(range(4), repeat=int(n[b])):
            if ctc_collapse(path) == targets[b]:
                p += math.exp(sum(float(logp[b, t, k].detach()) for t, k in enumerate(path)))
        total += -math.log(p)
    assert math.isclose(float(out["losses"]["ctc"].detach()), total / 2, rel_tol=1e-4)
    assert "cer" in out["metrics"]


@pytest.mark.parametrize("kind", ["lstm", "conv"])
def test_padding_does_not_change_hidden_states_and_predictions(kind):
    m = _model(kind=kind, num_layers=2)
    feats = torch.randn(3, 9, 6)
    lens = torch.tensor([9, 4, 7])
    batch = _batch(feats, lens, ["a", "b", "ab"])
    h, mask = m.encode(batch["feats"], batch["mask"])
    pred = m.predict(batch)
    for b in range(3):
        n = int(lens[b])
        single = _batch(feats[b:b + 1, :n], lens[b:b + 1], ["a"])
        hs, ms = m.encode(single["feats"], single["mask"])
        k = int(ms.sum())
        torch.testing.assert_close(h[b, :k], hs[0, :k], atol=1e-6, rtol=0)
        assert float(h[b, k:].abs().sum()) == 0.0
        assert pred["text"][b] == m.predict(single)["text"][0]
        # greedy decoding: argmax per frame, collapse, drop blanks
        logp, _ = m.log_probs(single)
        best = logp[0].argmax(-1).tolist()
        assert pred["token_ids"][b] == ctc_collapse(best)


def test_bad_transcripts_are_errors_naming_the_utterance():
    m = _model()
    batch = _batch(torch.randn(1, 6, 6), torch.tensor([6]), ["abc"])
    with pytest.raises(TokenizerError, match="u0"):
        m(batch)
    batch = _batch(torch.randn(1, 2, 6), torch.tensor([2]), ["abab"])
    with pytest.raises(DataError, match="u0.*frames"):
        m(batch)


def _asr_config(tmp_path, lang):
    from parastyle.train.config import load_config
    conf = load_config(None)
    conf["model"] = {"name": "ctc_asr", "token_list": str(lang / "tokens.txt"), "hidden": 32, "num_layers": 1,
                     "dropout": 0.0}
    conf["data"].update({"feats": False, "frontend": {"type": "logmel"}, "factors": [], "max_frames": 2000})
    conf["optim"] = {"name": "adam", "lr": 3e-3, "weight_decay": 0.0, "betas": [0.9, 0.999], "eps": 1e-8}
    conf["train"].update({"max_steps": 6, "valid_interval": 3, "ckpt_interval": 3, "log_interval": 3,
                          "device": "cpu", "progress": False})
    conf["valid"] = {"metric": "cer", "mode": "min", "patience": None}
    return conf


def test_trains_with_the_trainer_and_transcribe_matches_predict(tmp_path, make_data_dir_fixture):
    from parastyle.data.collate import collate_batch
    from parastyle.data.dataset import StyleDataset
    from parastyle.evaluate.asr import transcribe
    from parastyle.features.frontend import build_frontend
    from parastyle.train.checkpoint import load_model_from_exp
    from parastyle.train.trainer import Trainer
    d = make_data_dir_fixture(sample_rate=22050, num_spk=2, utts_per_spk=2, lang_dir=tmp_path / "lang")
    lang = tmp_path / "lang"
    utts = sorted(read_kv(d / "utt2spk"))
    (d / "text").write_text("".join(f"{u} {t}\n" for u, t in zip(utts, ["one", "two", "a b", "ten"])))
    write_tokens(lang / "tokens.txt", build_char_vocab(read_kv(d / "text")))
    exp = tmp_path / "exp"
    assert Trainer(_asr_config(tmp_path, lang), d, d, lang, exp).run() == "done"
    hyps = transcribe(exp, d)
    assert sorted(hyps) == sorted(read_kv(d / "utt2spk"))
    model, _, task = load_model_from_exp(exp)
    ds = StyleDataset(d, {}, use_feats=False, frontend=build_frontend({"type": "logmel"}))
    for i, utt in enumerate(ds.utts):
        ref = model.predict(collate_batch([ds[i]]))["text"][0]
        assert hyps[utt] == ref
    # the judge refuses audio at another rate and exps of another model
    d16 = make_data_dir_fixture("d16", sample_rate=16000, num_spk=1, utts_per_spk=1)
    with pytest.raises(DataError, match="16000 Hz"):
        transcribe(exp, d16)
    (tmp_path / "notasr").mkdir()
    (tmp_path / "notasr" / "config.yaml").write_text("model: {name: multitask_ce}\n")
    with pytest.raises(DataError, match="expected a 'ctc_asr' exp"):
        transcribe(tmp_path / "notasr", d)
