import json
import math

import pytest
import torch
import torch.nn.functional as F

from parastyle.losses import IGNORE_INDEX
from parastyle.models import build_model
from parastyle.models.task import TaskInfo

WORDS = ["a", "happy", "sad", "voice", "male", "female", "young", "old", "speaking", "english", "french"]
FACTORS = {"emotion": ["happy", "sad"], "gender": ["female", "male"], "age": ["young", "old"],
           "language": ["english", "french"]}
# the paper's Transformer backbone, tiny; it ends in the META size (24), so there is no META projection
ENC = {"name": "transformer", "d_model": 16, "nhead": 2, "num_layers": 1, "output_dim": 24, "dropout": 0.0}


@pytest.fixture(scope="module")
def bert_dir(tmp_path_factory):
    from transformers import BertConfig, BertModel, BertTokenizer

    path = tmp_path_factory.mktemp("bert")
    (path / "vocab.txt").write_text("\n".join(["[PAD]", "[UNK]", "[CLS]", "[SEP]", "[MASK]"] + WORDS) + "\n")
    BertTokenizer(str(path / "vocab.txt")).save_pretrained(str(path))
    torch.manual_seed(0)
    BertModel(BertConfig(vocab_size=len(WORDS) + 5, hidden_size=12, num_hidden_layers=1, num_attention_heads=2,
                         intermediate_size=24, max_position_embeddings=32)).save_pretrained(str(path))
    return str(path)


def make_model(bert_dir, name="parameta", **kw):
    conf = {"name": name, "encoder": ENC, "text_encoder": {"path": bert_dir}}
    if name == "parameta":
        conf.update(meta_dim=24, subspace_dim=8, tau_supcon=0.2, tau_meta=0.3)
    else:
        conf.update(embed_dim=8)
    conf.update(kw)
    return build_model(conf, TaskInfo(feat_dim=6, factors=FACTORS))


def make_batch(n=8, seed=0, unknown=True):
    """Features whose mean carries every factor (separable), variable lengths, captions from labels."""
    g = torch.Generator().manual_seed(seed)
    labels = {f: torch.randint(0, 2, (n,), generator=g) for f in FACTORS}
    lens = torch.randint(4, 9, (n,), generator=g)
    T = int(lens.max())
    feats = torch.randn(n, T, 6, generator=g) * 0.3
    for k, f in enumerate(FACTORS):
        feats[:, :, k] += (labels[f].float() * 2 - 1).unsqueeze(1) * 1.5
    mask = torch.arange(T)[None] < lens[:, None]
    feats = feats * mask.unsqueeze(-1)
    caps = [f"a {FACTORS['emotion'][labels['emotion'][i]]} {FACTORS['age'][labels['age'][i]]} "
            f"{FACTORS['gender'][labels['gender'][i]]} voice speaking {FACTORS['language'][labels['language'][i]]}"
            for i in range(n)]
    if unknown:
        labels["age"][0] = IGNORE_INDEX
    return {"utt_ids": [f"u{i}" for i in range(n)], "feats": feats, "feat_lens": lens, "mask": mask,
            "labels": labels, "captions": caps, "speakers": ["s"] * n}


def _cos(a, b):
    a, b = a.detach(), b.detach()
    return float(a @ b) / (float(a.norm()) * float(b.norm()))


def supcon_loop(emb, y, tau):
    """SupCon written as loops over anchors and positives (ignored labels removed)."""
    idx = [i for i in range(len(y)) if int(y[i]) != IGNORE_INDEX]
    terms = []
    for i in idx:
        pos = [p for p in idx if p != i and int(y[p]) == int(y[i])]
        if not pos:
            continue
        denom = sum(math.exp(_cos(emb[i], emb[k]) / tau) for k in idx if k != i)
        terms.append(-sum(math.log(math.exp(_cos(emb[i], emb[p]) / tau) / denom) for p in pos) / len(pos))
    return sum(terms) / len(terms) if terms else 0.0


def meta_loop(meta, labels, tau):
    """META regularisation as loops: pair weight = fraction of factors both know and share."""
    n, fs = meta.shape[0], list(labels)
    w = [[sum(1.0 for f in fs if int(labels[f][i]) != IGNORE_INDEX and int(labels[f][i]) == int(labels[f][j]))
          / len(fs) if i != j else 0.0 for j in range(n)] for i in range(n)]
    terms = []
    for i in range(n):
        tot = sum(w[i])
        if tot == 0:
            continue
        denom = sum(math.exp(_cos(meta[i], meta[k]) / tau) for k in range(n) if k != i)
        terms.append(-sum(w[i][j] / tot * math.log(math.exp(_cos(meta[i], meta[j]) / tau) / denom)
                          for j in range(n) if j != i))
    return sum(terms) / len(terms) if terms else 0.0


def layernorm_loop(v, eps=1e-5):
    v = v.detach()
    mu = sum(float(x) for x in v) / len(v)
    var = sum((float(x) - mu) ** 2 for x in v) / len(v)
    return torch.tensor([(float(x) - mu) / math.sqrt(var + eps) for x in v])


def nearest_loop(model, f, emb):
    """Nearest seen prototype of each row after a LayerNorm without affine (the authors' inference)."""
    protos, seen = model.prototypes.prototypes(f), model.prototypes.seen(f)
    out = []
    for e in emb:
        z = layernorm_loop(e)
        sims = [_cos(z, protos[c]) if bool(seen[c]) else -2.0 for c in range(protos.shape[0])]
        out.append(max(range(len(sims)), key=sims.__getitem__))
    return torch.tensor(out)


def test_forward_losses_match_loss_functions(bert_dir):
    model = make_model(bert_dir).train()
    batch = make_batch()
    out = model(batch)
    assert set(out["losses"]) == {"supcon_emotion", "supcon_gender", "supcon_age", "supcon_language", "meta",
                                  "pal_speech", "pal_text"}
    assert set(out["metrics"]) == {f"acc_{f}" for f in FACTORS} | {"acc_mean"}
    assert out["metrics"]["acc_mean"] == pytest.approx(sum(out["metrics"][f"acc_{f}"] for f in FACTORS) / 4)
    emb = model.embed(batch)
    assert emb["meta"].shape == (8, 24) and all(emb[f].shape == (8, 8) for f in FACTORS)
    # the encoder output is the META embedding (no projection)
    torch.testing.assert_close(emb["meta"], model.encoder(batch["feats"], batch["mask"]))
    for f in FACTORS:                                   # each loss at its own temperature (0.2 and 0.3)
        assert out["losses"][f"supcon_{f}"].item() == pytest.approx(supcon_loop(emb[f], batch["labels"][f], 0.2),
                                                                    rel=1e-4, abs=1e-5)
    assert out["losses"]["meta"].item() == pytest.approx(meta_loop(emb["meta"], batch["labels"], 0.3), rel=1e-4)
    # Prototype alignment (after the update by this batch), loop reference.
    pal = 0.0
    for f in FACTORS:
        y, terms = batch["labels"][f], []
        for i in range(8):
            if y[i] != IGNORE_INDEX:
                terms.append(1 - F.cosine_similarity(emb[f][i], model.prototypes.prototypes(f)[y[i]], dim=0))
        pal = pal + sum(terms) / len(terms)
    torch.testing.assert_close(out["losses"]["pal_speech"], 0.1 * pal)
    temb = model.embed_text(batch["captions"])
    pal_t = sum(model.prototypes.alignment_loss(f, temb[f], batch["labels"][f]) for f in FACTORS)
    torch.testing.assert_close(out["losses"]["pal_text"], 0.1 * pal_t)
    sum(out["losses"].values()).backward()
    assert model.text_proj["emotion"].weight.grad is not None and model.encoder.out.weight.grad is not None
    # the batch accuracy uses the inference rule (LayerNorm, nearest prototype)
    for f in FACTORS:
        pred = nearest_loop(model, f, emb[f].detach())
        y = batch["labels"][f]
        known = y != IGNORE_INDEX
        assert out["metrics"][f"acc_{f}"] == pytest.approx(float((pred[known] == y[known]).float().mean()))


def test_temperatures_defaults_and_legacy_tau(bert_dir):
    model = make_model(bert_dir, use_text=False, tau_supcon=None, tau_meta=None)
    assert (model.tau_supcon, model.tau_meta) == (0.07, 0.1)         # the paper's
    legacy = build_model({"name": "parameta", "encoder": ENC, "meta_dim": 24, "subspace_dim": 8, "tau": 0.2,
                          "use_text": False}, TaskInfo(feat_dim=6, factors=FACTORS))
    assert (legacy.tau_supcon, legacy.tau_meta) == (0.2, 0.2)
    with pytest.raises(ValueError, match="either tau"):
        make_model(bert_dir, use_text=False, tau=0.1)
    # an encoder of another size gets a META projection
    other = make_model(bert_dir, use_text=False, encoder={**ENC, "output_dim": 10})
    assert isinstance(other.meta_proj, torch.nn.Linear) and other.meta_proj.in_features == 10


def test_inference_layernorm_decides_the_class(bert_dir):
    """A constructed case where the raw cosine and the LayerNorm-ed cosine pick different prototypes."""
    model = make_model(bert_dir, use_text=False).eval()
    p0 = torch.ones(8) / math.sqrt(8)                                  # all in the mean direction
    p1 = torch.tensor([1.0, -1.0, 0, 0, 0, 0, 0, 0]) / math.sqrt(2)    # zero mean
    with torch.no_grad():
        model.prototypes.proto_emotion[:2] = torch.stack([p0, p1])
        model.prototypes.seen_emotion[:2] = True
    s = torch.ones(1, 8) + 0.3 * torch.tensor([[1.0, -1.0, 0, 0, 0, 0, 0, 0]])
    assert F.cosine_similarity(s, p0[None]).item() > F.cosine_similarity(s, p1[None]).item()
    assert model.classify({"emotion": s})["emotion"].item() == 1 == int(nearest_loop(model, "emotion", s)[0])
    raw = make_model(bert_dir, use_text=False, inference_layernorm=False).eval()
    raw.prototypes.load_state_dict(model.prototypes.state_dict())
    assert raw.classify({"emotion": s})["emotion"].item() == 0
    g = torch.Generator().manual_seed(5)
    many = torch.randn(20, 8, generator=g) + 2.0
    assert torch.equal(model.classify({"emotion": many})["emotion"], nearest_loop(model, "emotion", many))


def test_prototypes_update_only_in_train_mode(bert_dir):
    model = make_model(bert_dir)
    model.eval()
    with torch.no_grad():
        out = model(make_batch())
    assert not any(model.prototypes.seen(f).any() for f in FACTORS)
    assert out["metrics"] == {} and out["losses"]["pal_speech"].item() == 0.0
    model.train()
    model(make_batch())
    assert all(model.prototypes.seen(f).all() for f in FACTORS)


def test_without_meta_and_without_text(bert_dir):
    out = make_model(bert_dir, use_meta=False, use_text=False).train()(make_batch())
    assert "meta" not in out["losses"] and "pal_text" not in out["losses"]
    batch = make_batch()
    del batch["captions"]
    with pytest.raises(KeyError, match="utt2caption"):
        make_model(bert_dir).train()(batch)
    with pytest.raises(KeyError, match="labels for factor"):
        make_model(bert_dir).train()({**make_batch(), "labels": {"emotion": torch.zeros(8, dtype=torch.long)}})


def test_batch_of_one_and_all_unknown_factor(bert_dir):
    model = make_model(bert_dir).train()
    batch = make_batch(n=1, unknown=False)
    out = model(batch)
    assert all(torch.isfinite(v) for v in out["losses"].values())
    assert out["losses"]["supcon_emotion"].item() == 0.0 and out["losses"]["meta"].item() == 0.0
    batch = make_batch()
    batch["labels"]["language"][:] = IGNORE_INDEX
    out = make_model(bert_dir).train()(batch)
    assert out["losses"]["supcon_language"].item() == 0.0 and "acc_language" not in out["metrics"]
    sum(out["losses"].values()).backward()


def test_training_learns_and_state_dict_round_trip(bert_dir, tmp_path):
    torch.manual_seed(0)
    model = make_model(bert_dir, lam=1.0).train()     # strong text alignment so 150 tiny steps suffice
    opt = torch.optim.Adam(model.parameters(), lr=3e-3)
    for step in range(150):
        out = model(make_batch(n=16, seed=step))
        opt.zero_grad()
        sum(out["losses"].values()).backward()
        opt.step()
    model.eval()
    test = make_batch(n=32, seed=999, unknown=False)
    pred = model.predict(test)
    for f in FACTORS:
        acc = (pred[f] == test["labels"][f]).float().mean().item()
        assert acc >= 0.9, (f, acc)
    # Checkpoint holds prototypes and the text projection, not the frozen text encoder.
    sd = model.state_dict()
    assert "prototypes.proto_emotion" in sd and "prototypes.seen_age" in sd and "text_proj.gender.weight" in sd
    assert not any(k.startswith("text_encoder.") for k in sd)
    torch.save(sd, tmp_path / "m.pt")
    fresh = make_model(bert_dir, lam=1.0).eval()
    fresh.load_state_dict(torch.load(tmp_path / "m.pt"))
    for f in FACTORS:
        assert torch.equal(fresh.predict(test)[f], pred[f])
    # Text prompts land near the prototypes of their classes.
    tpred = fresh.predict_text(test["captions"])
    temb = fresh.embed_text(test["captions"])
    for f in FACTORS:
        assert torch.equal(tpred[f], nearest_loop(fresh, f, temb[f]))
    tacc = {f: (tpred[f] == test["labels"][f]).float().mean().item() for f in FACTORS}
    # manipulation of a trained model: re-classified as the target (loop reference) for most utterances
    emb = fresh.embed(test)
    for f in FACTORS:
        for c in range(2):
            new = fresh.manipulate(emb, f, c)[f]
            succ = (nearest_loop(fresh, f, new) == c).float().mean().item()
            assert succ >= 0.9, (f, c, succ)
    # (a random 12-d text encoder: captions differing in one word stay close, so the bar is modest)
    assert min(tacc.values()) >= 0.55 and sum(tacc.values()) / 4 >= 0.75, tacc


def test_manipulate(bert_dir):
    model = make_model(bert_dir).train()
    model(make_batch(n=16))
    model.eval()
    batch = make_batch(n=4, seed=3)
    emb = model.embed(batch)
    before = model.classify(emb)
    new = model.manipulate(emb, "emotion", "sad")
    unit = F.normalize(model.prototypes.prototypes("emotion")[1], dim=0).expand(4, -1)
    torch.testing.assert_close(new["emotion"], unit * emb["emotion"].norm(dim=-1, keepdim=True))
    torch.testing.assert_close(model.manipulate(emb, "emotion", 1, keep_norm=False)["emotion"], unit)
    assert torch.equal(new["meta"], emb["meta"]) and torch.equal(new["gender"], emb["gender"])
    after = model.classify(new)
    # nearest prototype after LayerNorm, recomputed by loops (not 1 by construction: the LayerNorm
    # centres the prototype); the other factors' subspaces, hence their classes, are untouched
    assert torch.equal(after["emotion"], nearest_loop(model, "emotion", new["emotion"]))
    assert torch.equal(after["gender"], before["gender"]) and torch.equal(after["age"], before["age"])
    torch.testing.assert_close(model.manipulate(emb, "emotion", 1)["emotion"], new["emotion"])
    with pytest.raises(KeyError, match="unknown emotion class"):
        model.manipulate(emb, "emotion", "bored")
    with pytest.raises(IndexError):
        model.manipulate(emb, "age", 7)


def test_clap_objective(bert_dir):
    model = make_model(bert_dir, name="clap_objective").train()
    assert model.class_captions["emotion"] == ["a happy voice", "a sad voice"]
    assert model.class_captions["language"] == ["a voice speaking english", "a voice speaking french"]
    batch = make_batch()
    out = model(batch)
    assert set(out["losses"]) == {"clap"} and torch.isfinite(out["losses"]["clap"])
    assert set(out["metrics"]) == {f"acc_{f}" for f in FACTORS} | {"acc_mean"}
    out["losses"]["clap"].backward()
    assert not any(k.startswith("text_encoder.") for k in model.state_dict())
    pred = model.predict(batch)
    speech = F.normalize(model.embed(batch)["shared"], dim=-1)
    for f in FACTORS:
        cls = F.normalize(model.embed_text(model.class_captions[f]), dim=-1)
        assert torch.equal(pred[f], (speech @ cls.t()).argmax(-1))
    tpl = make_model(bert_dir, name="clap_objective", class_templates={"age": "an {label} person"})
    assert tpl.class_captions["age"] == ["an young person", "an old person"]
    with pytest.raises(ValueError, match="label"):
        make_model(bert_dir, name="clap_objective", class_templates={"age": "no placeholder"})
    named = make_model(bert_dir, name="clap_objective", label_names={"language": {"french": "French"}})
    assert named.class_captions["language"] == ["a voice speaking english", "a voice speaking French"]
    with pytest.raises(ValueError, match="not in the language vocabulary"):
        make_model(bert_dir, name="clap_objective", label_names={"language": {"klingon": "Klingon"}})


# ---------------------------------------------------------------------- end to end: trainer + eval CLI
def _write_datadir(root, name, n, seed):
    """Tiny Kaldi data dir with kaldiio features in which every factor is a mean shift; captions from labels."""
    import kaldiio
    import numpy as np

    from parastyle.fileio import write_kv, write_list

    d = root / name
    d.mkdir(parents=True)
    rng = np.random.RandomState(seed)
    feats, files = {}, {k: {} for k in ["utt2spk", "utt2num_frames", "utt2caption"] + [f"utt2{f}" for f in FACTORS]}
    for i in range(n):
        spk = f"{name}s{i % 4}"
        utt = f"{spk}-{i:03d}"
        labs = {f: int(rng.randint(2)) for f in FACTORS}
        t = int(rng.randint(6, 14))
        x = rng.randn(t, 6).astype(np.float32) * 0.3
        for k, f in enumerate(FACTORS):
            x[:, k] += 1.5 * (2 * labs[f] - 1)
        feats[utt] = x
        files["utt2spk"][utt] = spk
        files["utt2num_frames"][utt] = str(t)
        for f in FACTORS:
            if not (f == "age" and i % 7 == 3):                 # some unknown ages
                files[f"utt2{f}"][utt] = FACTORS[f][labs[f]]
        files["utt2caption"][utt] = (f"a {FACTORS['emotion'][labs['emotion']]} {FACTORS['age'][labs['age']]} "
                                     f"{FACTORS['gender'][labs['gender']]} voice speaking "
                                     f"{FACTORS['language'][labs['language']]}")
    keys = sorted(feats)
    kaldiio.save_ark(str(d / "feats.ark"), {k: feats[k] for k in keys}, scp=str(d / "feats.scp"))
    for fname, kv in files.items():
        write_kv(d / fname, kv)
    spk2utt = {}
    for u in keys:
        spk2utt.setdefault(files["utt2spk"][u], []).append(u)
    write_kv(d / "spk2utt", {s: " ".join(us) for s, us in spk2utt.items()})
    for f, labs in FACTORS.items():
        write_list(root / "lang" / f"{f}.txt", labs)
    return d


def test_train_with_trainer_then_eval_parameta(bert_dir, tmp_path):
    import json

    from parastyle.bin import eval_parameta
    from parastyle.train.config import load_config
    from parastyle.train.trainer import Trainer

    train = _write_datadir(tmp_path / "data", "train", 32, 0)
    test = _write_datadir(tmp_path / "data", "test", 16, 1)
    config = load_config(None, [
        ("model", {"name": "parameta", "encoder": ENC, "meta_dim": 24, "subspace_dim": 8, "tau": 0.2,
                   "text_encoder": {"path": bert_dir}}),
        ("data.max_frames", 200), ("optim.lr", 0.003), ("train.max_steps", 8), ("train.valid_interval", 4),
        ("train.ckpt_interval", 4), ("train.average_best", 2), ("train.progress", False),
        ("valid.metric", "acc_mean"), ("valid.mode", "max")])
    exp = tmp_path / "exp" / "parameta"
    Trainer(config, train, test, tmp_path / "data" / "lang", exp).run()
    md = tmp_path / "RESULTS.md"
    md.write_text("# Results\n\nhand-written text\n")
    assert eval_parameta.main(["--exp", str(exp), "--train_data", str(train), "--data", str(test),
                               "--results_md", str(md), "--knn", "3"]) == 0
    res = json.loads((exp / "decode_test" / "results.json").read_text())
    assert set(res["leakage"]["matrix"]) == {"meta", *FACTORS}
    assert set(res["leakage"]["matrix"]["emotion"]) == set(FACTORS)
    # independent references: the exp's model and the test set's features, embedded utterance by utterance,
    # classified by the LayerNorm + cosine loop
    import kaldiio

    from parastyle.train.checkpoint import load_model_from_exp

    model, _, _ = load_model_from_exp(exp, None, map_location="cpu")
    model.eval()
    feats = dict(kaldiio.load_scp(str(test / "feats.scp")))
    embs = {f: [] for f in FACTORS}
    with torch.no_grad():
        for k in sorted(feats):
            x = torch.from_numpy(feats[k].copy())[None]
            e = model.embed({"feats": x, "mask": torch.ones(1, x.shape[1], dtype=torch.bool)})
            for f in FACTORS:
                embs[f].append(e[f][0])
    embs = {f: torch.stack(v) for f, v in embs.items()}
    for f in FACTORS:
        assert 0.0 <= res["text_prompt"][f]["balanced_accuracy"] <= 1.0 and res["text_prompt"][f]["n"] > 0
        for lab, m in res["manipulation"][f].items():
            c = FACTORS[f].index(lab)
            new = model.manipulate(embs, f, c)
            assert m["success"] == pytest.approx(float((nearest_loop(model, f, new[f]) == c).float().mean()), abs=1e-6)
            assert m["others_kept"] == 1.0          # the other subspaces are not touched
            assert m["sim_after"] == pytest.approx(1.0, abs=1e-5) and m["sim_before"] <= m["sim_after"] + 1e-6
            assert 0.0 <= m["meta_knn_success"] <= 1.0
    assert all((exp / "decode_test" / f"tsne_{s}.png").is_file() for s in ["meta", *FACTORS])
    text = md.read_text()
    assert "hand-written text" in text and "ParaMETA evaluation: parameta on test" in text
    # Re-running replaces the section instead of appending a second one.
    assert eval_parameta.main(["--exp", str(exp), "--train_data", str(train), "--data", str(test),
                               "--results_md", str(md), "--knn", "3", "--max_tsne", "0"]) == 0
    assert md.read_text().count("ParaMETA evaluation: parameta on test") == 1
