"""PolySpeech LM: causal mask, loss on targets only, KV cache = recomputation, beam, read-off, data errors,
and a short training run through the one trainer."""
from __future__ import annotations

import random
from pathlib import Path

import kaldiio
import numpy as np
import pytest
import torch
import torch.nn.functional as F

from parastyle.data.collate import IGNORE_INDEX
from parastyle.data.lm_dataset import EOS, SEP, SpeechLMDataset, collate_lm, vocab_from_config
from parastyle.fileio import DataError
from parastyle.models.polyspeech import PolySpeechLM
from parastyle.models.task import TaskInfo
from parastyle.text.tokenizer import train_sentencepiece

SENTS = ["the cat sat on the mat", "a dog ran to the park", "we like red apples", "she reads old books",
         "he sings a sad song", "the sun is hot today", "birds fly over the sea", "my tea is cold now"]
LANGS = ["en", "de"]
GENDERS = ["female", "male"]


def make_corpus(root: Path, n=8, feat_dim=6, num_speech=20, seed=0):
    """A fabricated data dir: text, utt2language, utt2gender, feats.scp, sset/utt2tokens; + lang dir."""
    rng = np.random.default_rng(seed)
    d, lang = root / "data", root / "lang"
    d.mkdir(parents=True)
    lang.mkdir()
    utts = sorted(f"spk{i % 2}-u{i:02d}" for i in range(n))
    texts = {u: SENTS[i % len(SENTS)] for i, u in enumerate(utts)}
    train_sentencepiece(texts, lang, vocab_size=30, model_type="unigram", model_prefix="text_units")
    (lang / "language.txt").write_text("\n".join(LANGS) + "\n")
    (lang / "gender.txt").write_text("\n".join(GENDERS) + "\n")
    (d / "utt2spk").write_text("".join(f"{u} {u.split('-')[0]}\n" for u in utts))
    (d / "spk2utt").write_text("".join(f"spk{s} {' '.join(u for u in utts if u.startswith(f'spk{s}-'))}\n"
                                       for s in (0, 1)))
    (d / "text").write_text("".join(f"{u} {texts[u]}\n" for u in utts))
    (d / "utt2language").write_text("".join(f"{u} {LANGS[i % 2]}\n" for i, u in enumerate(utts)))
    (d / "utt2gender").write_text("".join(f"{u} {GENDERS[(i // 2) % 2]}\n" for i, u in enumerate(utts)))
    with kaldiio.WriteHelper(f"ark,scp:{d}/feats.ark,{d}/feats.scp") as w:
        for u in utts:
            w[u] = rng.standard_normal((int(rng.integers(5, 12)), feat_dim)).astype(np.float32)
    (d / "sset").mkdir()
    (d / "sset" / "utt2tokens").write_text(
        "".join(f"{u} {' '.join(str(int(x)) for x in rng.integers(0, num_speech, int(rng.integers(4, 9))))}\n"
                for u in utts))
    return d, lang


def model_conf(lang, num_speech=20, **kw):
    c = {"text_units": str(lang / "text_units.model"), "num_speech_tokens": num_speech, "d_model": 32,
         "num_layers": 2, "num_heads": 4, "d_ff": 64, "dropout": 0.0}
    c.update(kw)
    return c


def factors():
    return {"language": LANGS, "gender": GENDERS}


def build(tmp_path, tasks=("asr", "tts", "lid", "gid"), speech_input="feats", **kw):
    d, lang = make_corpus(tmp_path, **kw)
    conf = model_conf(lang)
    vocab, tok = vocab_from_config(conf, factors())
    ds = SpeechLMDataset(d, vocab, tok, list(tasks), {"lid": "language", "gid": "gender"}, factors(), speech_input)
    torch.manual_seed(0)
    model = PolySpeechLM.from_config(conf, TaskInfo(feat_dim=6, factors=factors(), lang_dir=str(lang)))
    model.eval()
    return ds, model, d, lang


def test_sequence_layout(tmp_path):
    ds, model, d, lang = build(tmp_path)
    v = ds.vocab
    for i in range(len(ds)):
        it = ds[i]
        ids, ts = it["ids"], it["target_start"]
        assert ids[0] == v.task_id(it["task"]) and ids[ts - 1] == SEP and ids[-1] == EOS
        if it["task"] == "tts":
            assert all(v.segments["speech"][0] <= x < v.segments["speech"][1] for x in ids[ts:-1])
            text = model.text_of(ids[1:ts - 1])
            assert text == (d / "text").read_text().splitlines()[[l.split()[0] for l in
                                                                   (d / "text").read_text().splitlines()].index(it["utt_id"])].split(" ", 1)[1]
        if it["task"] in ("lid", "gid"):
            assert len(ids) - ts == 2
    # 8 utterances x 4 tasks
    assert sorted(ds.item_tasks()) == sorted(["asr", "tts", "lid", "gid"] * 8)
    assert ds.lengths() == [len(ds[i]["ids"]) for i in range(len(ds))]


def test_causal_mask_future_never_changes_past(tmp_path):
    ds, model, _, _ = build(tmp_path)
    batch = collate_lm([ds[i] for i in range(6)])
    ref = model.logits(batch)
    b, cut = 0, 5
    changed = dict(batch)
    changed["ids"] = batch["ids"].clone()
    changed["ids"][b, cut:] = (changed["ids"][b, cut:] + 7) % model.vocab.size
    changed["cont"] = batch["cont"].clone()
    changed["cont"][b, cut:] += 3.0
    out = model.logits(changed)
    assert torch.allclose(out[b, :cut], ref[b, :cut], atol=1e-5)
    assert not torch.allclose(out[b, cut:], ref[b, cut:], atol=1e-3)
    assert torch.allclose(out[1:], ref[1:], atol=1e-5)            # other rows untouched


def test_padding_does_not_change_logits(tmp_path):
    ds, model, _, _ = build(tmp_path)
    items = [ds[i] for i in range(5)]
    batch = collate_lm(items)
    full = model.logits(batch)
    for b, it in enumerate(items):
        one = model.logits(collate_lm([it]))
        n = len(it["ids"])
        assert torch.allclose(full[b, :n], one[0], atol=1e-5)


def test_loss_only_on_targets(tmp_path):
    ds, model, _, _ = build(tmp_path)
    items = [ds[i] for i in range(len(ds))]
    batch = collate_lm(items)
    out = model(batch)
    logits = model.logits(batch)
    # reference: per task, mean CE over positions i with i+1 in [target_start, len)
    for task in ("asr", "tts", "lid", "gid"):
        terms = []
        for b, it in enumerate(items):
            if it["task"] != task:
                continue
            for j in range(it["target_start"], len(it["ids"])):
                terms.append(-F.log_softmax(logits[b, j - 1], -1)[it["ids"][j]])
        assert torch.allclose(out["losses"][f"loss_{task}"], torch.stack(terms).mean(), atol=1e-5)
    # changing an input (non-target) token's own prediction target does not change the loss:
    # perturbing the logits at input positions has no effect because targets there are ignored
    assert (batch["targets"][0, : items[0]["target_start"] - 1] == IGNORE_INDEX).all()
    assert set(out["losses"]) == {"loss_asr", "loss_tts", "loss_lid", "loss_gid"}


@pytest.mark.parametrize("task", ["asr", "tts"])
def test_kv_cache_generation_equals_recomputation(tmp_path, task):
    ds, model, _, _ = build(tmp_path)
    it = next(ds[i] for i in range(len(ds)) if ds[i]["task"] == task)
    b = collate_lm([it])
    P = it["target_start"]
    ids = b["ids"][:, :P]
    cont = b.get("cont")
    cont, cm = (cont[:, :P], b["cont_mask"][:, :P]) if cont is not None else (None, None)
    a = model.generate(ids, task, cont, cm, max_len=15, method="greedy", use_cache=True)
    r = model.generate(ids, task, cont, cm, max_len=15, method="greedy", use_cache=False)
    assert a == r and len(a) > 0
    g1, g2 = torch.Generator().manual_seed(3), torch.Generator().manual_seed(3)
    s1 = model.generate(ids, task, cont, cm, max_len=15, method="sample", top_k=5, temperature=1.3, generator=g1)
    s2 = model.generate(ids, task, cont, cm, max_len=15, method="sample", top_k=5, temperature=1.3,
                        generator=g2, use_cache=False)
    assert s1 == s2
    lo, hi = model.vocab.output_range(task)
    assert all(lo <= x < hi for x in a + s1)
    # the cached step logits equal the full forward's logits at every generated position
    seq = torch.cat([ids, torch.tensor([a])], dim=1)
    cc = None if cont is None else F.pad(cont, (0, 0, 0, len(a)))
    full = model.logits({"ids": seq, "cont": cc, "cont_mask": None if cm is None else F.pad(cm, (0, len(a)))})[0]
    logits, cache = model._prompt(ids, cont, cm)
    assert torch.allclose(logits, full[P - 1], atol=1e-5)
    for k, tok in enumerate(a[:-1]):
        logits, cache = model._step(torch.tensor([tok]), P + k, cache)
        assert torch.allclose(logits[0], full[P + k], atol=1e-4)


def _brute_force_beam(model, ids, cont, cm, task, max_len, beam):
    """Reference beam search by full recomputation (no cache), same rules."""
    allowed = model._allowed(task, True)

    def logp(seq):
        cc = None if cont is None else F.pad(cont, (0, 0, 0, seq.shape[1] - cont.shape[1]))
        m = None if cm is None else F.pad(cm, (0, seq.shape[1] - cm.shape[1]))
        lg = model.logits({"ids": seq, "cont": cc, "cont_mask": m})[0, -1]
        return lg.masked_fill(~allowed, float("-inf")).log_softmax(-1)

    beams, finished = [(0.0, [])], []
    for step in range(max_len):
        cand = []
        for score, hyp in beams:
            lp = logp(torch.cat([ids, torch.tensor([hyp], dtype=torch.long).view(1, -1)], 1))
            top = lp.topk(min(beam, int(allowed.sum())))
            cand += [(score + v, hyp, t) for v, t in zip(top.values.tolist(), top.indices.tolist())]
        cand.sort(key=lambda c: -c[0])
        nb = []
        for score, hyp, t in cand:
            if t == EOS:
                finished.append((score, hyp))
            else:
                nb.append((score, hyp + [t]))
            if len(nb) == beam:
                break
        if not nb or max((f[0] for f in finished), default=-1e30) >= nb[0][0]:
            break
        beams = nb
    else:
        finished.extend(beams)
    return max(finished, key=lambda f: f[0])[1]


def test_beam_search_against_recomputation(tmp_path):
    ds, model, _, _ = build(tmp_path)
    it = next(ds[i] for i in range(len(ds)) if ds[i]["task"] == "asr")
    b = collate_lm([it])
    P = it["target_start"]
    ids, cont, cm = b["ids"][:, :P], b["cont"][:, :P], b["cont_mask"][:, :P]
    got = model.generate(ids, "asr", cont, cm, max_len=6, method="beam", beam_size=3)
    assert got == _brute_force_beam(model, ids, cont, cm, "asr", 6, 3)
    # beam 1 == greedy
    assert model.generate(ids, "asr", cont, cm, max_len=6, method="beam", beam_size=1) == \
        model.generate(ids, "asr", cont, cm, max_len=6, method="greedy")


def test_classify_reads_label_tokens(tmp_path):
    ds, model, _, _ = build(tmp_path)
    items = [ds[i] for i in range(len(ds)) if ds[i]["task"] in ("lid", "gid")]
    batch = collate_lm(items)
    pred = model.classify(batch)
    for b, it in enumerate(items):
        lg = model.logits(collate_lm([it]))[0, it["target_start"] - 1]
        s, e = model.vocab.output_range(it["task"])
        assert int(pred[it["task"]][b]) == int(lg[s:e].argmax())
        other = "gid" if it["task"] == "lid" else "lid"
        assert int(pred[other][b]) == -1


def test_token_input_mode(tmp_path):
    ds, model, _, _ = build(tmp_path, tasks=("asr", "lid"), speech_input="tokens")
    it = ds[0]
    s, e = ds.vocab.segments["speech"]
    assert it["cont"] is None and all(s <= x < e for x in it["ids"][1:it["target_start"] - 1])
    out = model(collate_lm([ds[i] for i in range(4)]))
    assert torch.isfinite(sum(out["losses"].values()))


def test_bad_inputs(tmp_path):
    d, lang = make_corpus(tmp_path)
    conf = model_conf(lang)
    vocab, tok = vocab_from_config(conf, factors())
    lab = {"lid": "language", "gid": "gender"}
    with pytest.raises(DataError, match="unknown task 'sid'"):
        SpeechLMDataset(d, vocab, tok, ["asr", "sid"], lab, factors())
    with pytest.raises(ValueError, match="unknown task"):
        vocab.task_id("st")
    # token id out of range: the vocabulary has 20 speech tokens
    lines = (d / "sset" / "utt2tokens").read_text().splitlines()
    bad = list(lines)
    bad[2] = bad[2].split()[0] + " 3 99 4"
    (d / "sset" / "utt2tokens").write_text("\n".join(bad) + "\n")
    with pytest.raises(DataError, match=r"utt2tokens:3: utterance 'spk0-u04': speech token id 99 is out of range"):
        SpeechLMDataset(d, vocab, tok, ["tts"], lab, factors())
    # missing utt2tokens line
    (d / "sset" / "utt2tokens").write_text("\n".join(l for i, l in enumerate(lines) if i != 4) + "\n")
    with pytest.raises(DataError, match="no line for utterance 'spk1-u01'"):
        SpeechLMDataset(d, vocab, tok, ["tts"], lab, factors())
    # empty transcript
    t = (d / "text").read_text().splitlines()
    t[1] = t[1].split()[0]
    (d / "text").write_text("\n".join(t) + "\n")
    with pytest.raises(DataError, match="utterance 'spk0-u02' has an empty transcript"):
        SpeechLMDataset(d, vocab, tok, ["asr"], lab, factors())
    # label task without its factor vocabulary
    v2, _ = vocab_from_config(conf, {"language": LANGS})
    with pytest.raises(DataError, match="task 'gid' reads off factor 'gender'"):
        SpeechLMDataset(d, v2, tok, ["gid"], lab, {"language": LANGS})
    # out-of-vocabulary id reaching the model
    model = PolySpeechLM(vocab, 6, d_model=16, num_layers=1, num_heads=2, d_ff=16)
    with pytest.raises(ValueError, match="out of the union vocabulary"):
        model.logits({"ids": torch.tensor([[3, vocab.size + 2, SEP]])})


def test_trains_by_the_trainer_and_resumes(tmp_path):
    """A few steps of multitask training by parastyle's trainer with the task sampler; a resumed run
    ends with the same weights as an uninterrupted one."""
    from parastyle.train.config import load_config
    from parastyle.train.trainer import Trainer

    d, lang = make_corpus(tmp_path, n=12)
    (d / "utt2num_frames").write_text("".join(f"{u} {kaldiio.load_mat(p).shape[0]}\n" for u, p in
                                              (l.split() for l in (d / "feats.scp").read_text().splitlines())))

    def config():
        c = load_config(None)
        c["model"] = dict(model_conf(lang), name="polyspeech")
        c["data"].update({"dataset": "speech_lm", "factors": ["language", "gender"], "max_frames": 200,
                          "batch_size": 4, "lm": {"tasks": ["asr", "tts", "lid", "gid"]},
                          "sampler": {"name": "task", "weights": None}})
        c["train"].update({"max_steps": 6, "log_interval": 1, "valid_interval": 3, "ckpt_interval": 3,
                           "device": "cpu", "accum_grad": 2, "progress": False})
        return c

    a = Trainer(config(), d, d, lang, tmp_path / "exp_a")
    assert a.run() == "done"
    b = Trainer(config(), d, d, lang, tmp_path / "exp_b")
    assert b.run(stop_after_steps=3) == "stopped"
    b2 = Trainer(config(), d, d, lang, tmp_path / "exp_b")
    assert b2.run() == "done"
    sa, sb = a.model.state_dict(), b2.model.state_dict()
    assert all(torch.equal(sa[k], sb[k]) for k in sa)
    res = a.valid_history[-1][1]
    assert {"loss_asr", "loss_tts", "loss_lid", "loss_gid", "acc_asr"} <= set(res)
