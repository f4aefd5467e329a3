import json
import os

import pytest
import torch

from parastyle.nn.text_encoder import TextEncoder, default_text_encoder_path

WORDS = ["a", "happy", "sad", "angry", "voice", "male", "female", "young", "old", "speaking", "english"]


def make_tiny_bert(path, pooling=None, normalize=False):
    """A random 2-layer BERT with a WordPiece vocabulary, saved as a HF (optionally sentence-transformers) dir."""
    from transformers import BertConfig, BertModel, BertTokenizer

    path.mkdir(parents=True, exist_ok=True)
    vocab = path / "vocab.txt"
    vocab.write_text("\n".join(["[PAD]", "[UNK]", "[CLS]", "[SEP]", "[MASK]"] + WORDS) + "\n")
    BertTokenizer(str(vocab)).save_pretrained(str(path))
    torch.manual_seed(0)
    cfg = BertConfig(vocab_size=len(WORDS) + 5, hidden_size=16, num_hidden_layers=2, num_attention_heads=2,
                     intermediate_size=32, max_position_embeddings=64)
    BertModel(cfg).save_pretrained(str(path))
    if pooling is not None:
        (path / "1_Pooling").mkdir()
        (path / "1_Pooling" / "config.json").write_text(json.dumps({
            "word_embedding_dimension": 16, "pooling_mode_cls_token": pooling == "cls",
            "pooling_mode_mean_tokens": pooling == "mean", "pooling_mode_max_tokens": pooling == "max"}))
        modules = [{"idx": 0, "name": "0", "path": "", "type": "sentence_transformers.models.Transformer"},
                   {"idx": 1, "name": "1", "path": "1_Pooling", "type": "sentence_transformers.models.Pooling"}]
        if normalize:
            modules.append({"idx": 2, "name": "2", "path": "2_Normalize", "type": "sentence_transformers.models.Normalize"})
        (path / "modules.json").write_text(json.dumps(modules))
    return str(path)


@pytest.fixture(scope="module")
def tiny_dirs(tmp_path_factory):
    root = tmp_path_factory.mktemp("tiny_bert")
    return {"plain": make_tiny_bert(root / "plain"), "cls": make_tiny_bert(root / "cls", "cls"),
            "mean_norm": make_tiny_bert(root / "mean_norm", "mean", normalize=True)}


def reference_pooling(path, captions, mode):
    from transformers import AutoModel, AutoTokenizer

    tok = AutoTokenizer.from_pretrained(path)
    model = AutoModel.from_pretrained(path).eval()
    with torch.no_grad():
        out = []
        for c in captions:                                  # one at a time: no padding involved
            ids = tok([c], return_tensors="pt")
            h = model(**ids).last_hidden_state[0]
            out.append(h[0] if mode == "cls" else h.mean(0))
    return torch.stack(out)


def test_mean_pooling_without_st_files_matches_unpadded_reference(tiny_dirs):
    enc = TextEncoder(tiny_dirs["plain"])
    assert enc.pooling == "mean" and not enc.normalize and enc.output_dim == 16
    caps = ["a happy voice", "a sad old male voice speaking english", "a happy voice"]
    torch.testing.assert_close(enc(caps), reference_pooling(tiny_dirs["plain"], caps, "mean"), atol=1e-5, rtol=1e-4)


def test_pooling_from_sentence_transformers_config(tiny_dirs):
    enc = TextEncoder(tiny_dirs["cls"])
    assert enc.pooling == "cls"
    caps = ["a young female voice", "angry"]
    torch.testing.assert_close(enc(caps), reference_pooling(tiny_dirs["cls"], caps, "cls"), atol=1e-5, rtol=1e-4)
    enc = TextEncoder(tiny_dirs["mean_norm"])
    assert enc.pooling == "mean" and enc.normalize
    torch.testing.assert_close(enc(caps).norm(dim=-1), torch.ones(2))
    assert TextEncoder(tiny_dirs["cls"], pooling="mean").pooling == "mean"


def test_frozen_weights_not_in_state_dict_and_cache(tiny_dirs):
    enc = TextEncoder(tiny_dirs["plain"])
    assert list(enc.parameters()) == [] and enc.state_dict() == {}
    holder = torch.nn.Module()
    holder.text = enc
    holder.proj = torch.nn.Linear(16, 2)
    assert set(holder.state_dict()) == {"proj.weight", "proj.bias"}
    a = enc(["a happy voice", "a sad voice", "a happy voice"])
    assert set(enc._cache) == {"a happy voice", "a sad voice"}
    assert not a.requires_grad
    torch.testing.assert_close(a[0], a[2])
    # The cache is used: a changed transformer is not re-run for known captions.
    with torch.no_grad():
        for p in enc.transformer.parameters():
            p.add_(1.0)
    torch.testing.assert_close(enc(["a sad voice"])[0], a[1])
    enc.to(torch.float64)
    assert enc(["a sad voice"]).dtype == torch.float64      # moving/casting clears the cache


def test_trainable_mode_saves_weights_and_has_grad(tiny_dirs):
    enc = TextEncoder(tiny_dirs["plain"], trainable=True)
    assert any(k.startswith("model.") for k in enc.state_dict())
    enc(["a happy voice"]).sum().backward()
    assert any(p.grad is not None for p in enc.parameters())


def test_errors(tiny_dirs, tmp_path):
    with pytest.raises(FileNotFoundError, match="config.json"):
        TextEncoder(str(tmp_path))
    enc = TextEncoder(tiny_dirs["plain"])
    with pytest.raises(ValueError, match="caption 1"):
        enc(["a voice", ""])
    with pytest.raises(ValueError, match="pooling"):
        TextEncoder(tiny_dirs["plain"], pooling="median")


def test_real_minilm_offline(monkeypatch):
    monkeypatch.setenv("HF_HUB_OFFLINE", "1")
    path = default_text_encoder_path()
    assert os.path.isdir(path)
    enc = TextEncoder(path)
    assert enc.output_dim == 384 and enc.pooling == "mean" and enc.normalize
    e = enc(["a happy voice", "a joyful voice", "the stock market fell sharply today"])
    assert e.shape == (3, 384)
    torch.testing.assert_close(e.norm(dim=-1), torch.ones(3), atol=1e-5, rtol=1e-5)
    assert float(e[0] @ e[1]) > float(e[0] @ e[2])
