"""PolySpeech scoring against brute force: label read-off accuracy / UAR, ASR CER by the LM's own
generate, prompt choice, k-means token reconstruction error, RESULTS tables."""
from __future__ import annotations

import json
from pathlib import Path

import numpy as np
import pytest
import torch

from parastyle.data.lm_dataset import SpeechLMDataset, vocab_from_config
from parastyle.evaluate import polyspeech as ev
from parastyle.fileio import DataError
from parastyle.models.polyspeech import PolySpeechLM
from parastyle.models.task import TaskInfo
from test_polyspeech import GENDERS, LANGS, factors, make_corpus, model_conf


def _setup(tmp_path):
    d, lang = make_corpus(tmp_path, n=10)
    conf = model_conf(lang)
    vocab, tok = vocab_from_config(conf, factors())
    ds = SpeechLMDataset(d, vocab, tok, ["asr", "lid", "gid"], {"lid": "language", "gid": "gender"}, factors())
    torch.manual_seed(1)
    m = PolySpeechLM.from_config(conf, TaskInfo(feat_dim=6, factors=factors(), lang_dir=str(lang))).eval()
    return d, ds, m


def test_label_metrics_against_brute_force(tmp_path):
    d, ds, m = _setup(tmp_path)
    res = ev.eval_labels(m, ds, batch_size=3)
    for t, names in (("lid", LANGS), ("gid", GENDERS)):
        truth, pred = [], []
        for i, (tt, u) in enumerate(ds.items):
            if tt != t:
                continue
            it = ds[i]
            lg = m.logits(ev.collate_lm([it]))[0, it["target_start"] - 1]
            s, e = m.vocab.output_range(t)
            pred.append(int(lg[s:e].argmax()))
            truth.append(ds.labels[t][u])
            assert res[t]["pred"][u] == names[pred[-1]]
        acc = np.mean([a == b for a, b in zip(truth, pred)])
        recalls = [np.mean([p == c for a, p in zip(truth, pred) if a == c]) for c in sorted(set(truth))]
        assert res[t]["metrics"]["accuracy"] == pytest.approx(acc)
        assert res[t]["metrics"]["uar"] == pytest.approx(np.mean(recalls))


def test_asr_cer_against_brute_force(tmp_path):
    d, ds, m = _setup(tmp_path)
    res = ev.eval_asr(m, ds, max_len=8)
    texts = dict(l.split(" ", 1) for l in (d / "text").read_text().splitlines())
    errs = n = 0
    for i, (t, u) in enumerate(ds.items):
        if t != "asr":
            continue
        hyp = m.text_of(m.generate(*ev.prompt_of(ds[i])[:1], "asr", *ev.prompt_of(ds[i])[1:], max_len=8))
        assert res["hyp"][u] == hyp
        ref = texts[u]
        # Levenshtein distance by the textbook dynamic programme
        D = list(range(len(hyp) + 1))
        for a in ref:
            prev, D[0] = D[0], D[0] + 1
            for j, b in enumerate(hyp, 1):
                prev, D[j] = D[j], min(D[j] + 1, D[j - 1] + 1, prev + (a != b))
        errs += D[-1]
        n += len(ref)
    assert res["metrics"]["cer"] == pytest.approx(errs / n)


def test_choose_prompts():
    u2s = {"a-1": "a", "a-2": "a", "a-3": "a", "b-1": "b", "b-2": "b", "c-1": "c"}
    assert ev.choose_prompts(u2s, ["a-1", "a-3", "b-2"]) == {"a-1": "a-2", "a-3": "a-1", "b-2": "b-1"}
    with pytest.raises(DataError, match="speaker 'c' has no other utterance"):
        ev.choose_prompts(u2s, ["c-1"])


def test_kmeans_reconstruction_against_brute_force(tmp_path):
    import kaldiio
    from parastyle.bin import make_tokens
    from parastyle.tokenizers.kmeans import KMeansTokenizer
    rng = np.random.default_rng(3)
    d = tmp_path / "kd"
    d.mkdir()
    mats = {f"s-{i}": rng.standard_normal((int(rng.integers(5, 9)), 3)).astype(np.float32) for i in range(4)}
    (d / "utt2spk").write_text("".join(f"{u} s\n" for u in mats))
    with kaldiio.WriteHelper(f"ark,scp:{d}/feats.ark,{d}/feats.scp") as w:
        for u, x in mats.items():
            w[u] = x
    assert make_tokens.main(["--data", str(d), "--kmeans", str(tmp_path / "km.npz"), "--kmeans_fit", "4"]) == 0
    r = ev.token_reconstruction(d, "kmeans", kmeans=tmp_path / "km.npz")
    km = KMeansTokenizer.load(tmp_path / "km.npz")
    x = np.concatenate(list(mats.values()))
    ref = np.mean([(x[t] - km.centers[np.argmin(((km.centers - x[t]) ** 2).sum(1))]) ** 2 for t in range(len(x))])
    assert r["mse"] == pytest.approx(float(ref), rel=1e-5)
    assert r["tokens_per_frame"] == 1.0 and r["vocab_size"] == 4
    table = ev.results_tables([{"method": "m", "tasks": ["asr"], "speech_input": "feats",
                                "metrics": {"asr": {"cer": 0.25, "wer": 0.5}}, "num_parameters": 10 ** 6}],
                              [dict(r, name="kmeans")])
    assert "| m | asr | feats | 25.0 | 50.0 | – |" in table and "| kmeans | 4 | 1.00 |" in table
