"""SSL loader: tiny random models saved in every supported form load back with identical outputs."""
import pytest
import torch

from parastyle.fileio import DataError
from parastyle.nn.encoders import build_encoder
from parastyle.nn.encoders.ssl import (SSLLayerExtractor, build_ssl_model, load_ssl_model,
                                       normalize_waveforms, save_ssl_model)

CONV = [(8, 10, 5), (8, 3, 2), (8, 2, 2)]   # 20 samples per frame


def tiny_config(wavlm: bool, mode: str = "layer_norm"):
    conf = dict(extractor_mode=mode, extractor_conv_layer_config=CONV, extractor_conv_bias=False,
                encoder_embed_dim=16, encoder_projection_dropout=0.0, encoder_pos_conv_kernel=4,
                encoder_pos_conv_groups=2, encoder_num_layers=2, encoder_num_heads=2,
                encoder_attention_dropout=0.0, encoder_ff_interm_features=24, encoder_ff_interm_dropout=0.0,
                encoder_dropout=0.0, encoder_layer_norm_first=True, encoder_layer_drop=0.0)
    if wavlm:
        conf.update(encoder_num_buckets=8, encoder_max_distance=20)
    return conf


def _wav(b=2, s=800, seed=0):
    g = torch.Generator().manual_seed(seed)
    return torch.randn(b, s, generator=g)


@pytest.mark.parametrize("wavlm", [False, True])
def test_arch_config_file_roundtrip(tmp_path, wavlm):
    torch.manual_seed(0)
    conf = tiny_config(wavlm)
    model = build_ssl_model(conf).eval()
    save_ssl_model(model, conf, tmp_path / "m.pt")
    loaded = load_ssl_model(tmp_path / "m.pt")
    assert type(loaded.encoder.transformer.layers[0].attention).__name__ == \
        type(model.encoder.transformer.layers[0].attention).__name__
    wav, lens = _wav(), torch.tensor([800, 600])
    a, _ = SSLLayerExtractor(model)(wav, lens)
    b, _ = SSLLayerExtractor(loaded)(wav, lens)
    assert len(a) == len(b) == 2
    for x, y in zip(a, b):
        assert torch.equal(x, y)


def test_bundle_state_dict_file(tmp_path, monkeypatch):
    """A bare state-dict file is read with the architecture of the named torchaudio bundle."""
    import torchaudio.pipelines as pipelines

    conf = tiny_config(True)
    monkeypatch.setattr(pipelines.WAVLM_LARGE, "_params", conf)
    torch.manual_seed(1)
    model = build_ssl_model(conf).eval()
    torch.save(model.state_dict(), tmp_path / "wavlm.pth")
    loaded = load_ssl_model(tmp_path / "wavlm.pth", arch="WAVLM_LARGE")
    assert loaded.normalize_waveform is True   # WavLM-Large is trained on normalised waveforms
    wav = _wav()
    assert torch.equal(model.extract_features(wav)[0][-1], loaded.extract_features(wav)[0][-1])
    with pytest.raises(DataError, match="bundle name"):
        load_ssl_model(tmp_path / "wavlm.pth")
    with pytest.raises(DataError, match="unknown torchaudio SSL bundle"):
        load_ssl_model(tmp_path / "wavlm.pth", arch="NOT_A_BUNDLE")
    with pytest.raises(DataError, match="do not match"):
        load_ssl_model(tmp_path / "wavlm.pth", arch="HUBERT_BASE")


def _hf_common():
    return dict(hidden_size=16, num_hidden_layers=2, num_attention_heads=2, intermediate_size=24,
                conv_dim=[c[0] for c in CONV], conv_kernel=[c[1] for c in CONV], conv_stride=[c[2] for c in CONV],
                conv_bias=False, num_conv_pos_embeddings=4, num_conv_pos_embedding_groups=2,
                feat_extract_norm="layer", do_stable_layer_norm=True, hidden_dropout=0.0,
                attention_dropout=0.0, activation_dropout=0.0, feat_proj_dropout=0.0, layerdrop=0.0,
                vocab_size=8)


@pytest.mark.parametrize("kind", ["wav2vec2", "hubert", "wavlm"])
def test_huggingface_dir(tmp_path, kind):
    import transformers

    cfg_cls, model_cls = {"wav2vec2": ("Wav2Vec2Config", "Wav2Vec2Model"),
                          "hubert": ("HubertConfig", "HubertModel"),
                          "wavlm": ("WavLMConfig", "WavLMModel")}[kind]
    extra = {"num_buckets": 8, "max_bucket_distance": 20} if kind == "wavlm" else {}
    torch.manual_seed(2)
    hf = getattr(transformers, model_cls)(getattr(transformers, cfg_cls)(**_hf_common(), **extra)).eval()
    hf.save_pretrained(tmp_path / kind)
    model = load_ssl_model(tmp_path / kind)
    wav = _wav(1, 640)
    with torch.no_grad():
        out = hf(wav, output_hidden_states=True)
        ref = out.hidden_states
        ours, _ = model.extract_features(wav)
    # hidden_states[0] is the input of the first layer; hidden_states[i] the raw output of block i
    assert len(ref) == len(ours) + 1
    for i in range(len(ours)):
        torch.testing.assert_close(ours[i], ref[i + 1], atol=1e-4, rtol=1e-4)
    # the extractor (mask-aware path): the same blocks, and the last layer is last_hidden_state
    # (stable-layer-norm models apply the encoder's final LayerNorm after the last block)
    layers, mask = SSLLayerExtractor(model)(wav, torch.tensor([640]))
    assert bool(mask.all())
    for i in range(len(ours) - 1):
        torch.testing.assert_close(layers[i], ref[i + 1], atol=1e-4, rtol=1e-4)
    torch.testing.assert_close(layers[-1], out.last_hidden_state, atol=1e-4, rtol=1e-4)
    assert (layers[-1] - ref[-1]).abs().max() > 1e-2      # the raw last block is not the last layer
    assert model.normalize_waveform is False


def test_missing_or_bad_path(tmp_path):
    with pytest.raises(DataError, match="not found"):
        load_ssl_model(tmp_path / "nope.pt")
    (tmp_path / "d").mkdir()
    with pytest.raises(DataError, match="config.json"):
        load_ssl_model(tmp_path / "d")


def test_extractor_layers_mask_and_padding_invariance():
    torch.manual_seed(3)
    model = build_ssl_model(tiny_config(True)).eval()
    ex = SSLLayerExtractor(model, freeze=True)
    assert ex.num_layers == 2 and ex.output_dim == 16
    assert not any(p.requires_grad for p in ex.parameters())
    wav = _wav(2, 800)
    wav[1, 500:] = 0.0
    layers, mask = ex(wav, torch.tensor([800, 500]))
    assert len(layers) == 2 and layers[0].shape == (2, 39, 16)
    assert mask.dtype == torch.bool and mask[0].sum() == 39 and mask[1].sum() == 24
    assert torch.equal(ex.frame_lengths(torch.tensor([800, 500])), mask.sum(1))
    alone, m1 = ex(wav[1:, :500], torch.tensor([500]))
    torch.testing.assert_close(layers[-1][1, :24], alone[-1][0], atol=1e-5, rtol=1e-5)
    ex.train()
    assert not ex.model.training


def test_normalize_waveforms_uses_valid_samples_only():
    wav = torch.tensor([[1.0, 3.0, 0.0, 0.0], [2.0, 4.0, 6.0, 8.0]])
    mask = torch.tensor([[True, True, False, False], [True, True, True, True]])
    out = normalize_waveforms(wav, mask, eps=0.0)
    torch.testing.assert_close(out[0], torch.tensor([-1.0, 1.0, 0.0, 0.0]))
    v = torch.tensor([2.0, 4.0, 6.0, 8.0])
    torch.testing.assert_close(out[1], (v - v.mean()) / v.var(unbiased=False).sqrt())


def test_ssl_encoder_pooling_trainable_and_state_dict(tmp_path):
    torch.manual_seed(4)
    conf = tiny_config(False)
    model = build_ssl_model(conf).eval()
    save_ssl_model(model, conf, tmp_path / "m.pt")
    enc = build_encoder({"name": "ssl", "path": str(tmp_path / "m.pt"), "layer": 1}, input_dim=999)
    assert enc.output_dim == 16
    x = _wav(2, 800).unsqueeze(-1)
    mask = torch.zeros(2, 800, dtype=torch.bool)
    mask[0] = True
    mask[1, :600] = True
    emb = enc(x, mask)
    layers, _ = model.extract_features(x[1:, :600, 0])
    torch.testing.assert_close(emb[1], layers[0][0].mean(0), atol=1e-5, rtol=1e-5)
    # padded samples never change the embedding
    x2 = x.clone()
    x2[1, 600:] = 5.0
    torch.testing.assert_close(enc(x2, mask), emb)
    # frozen weights are left out of the state dict and not required on load
    assert not any(k.startswith("extractor.model.") for k in enc.state_dict())
    enc.load_state_dict(enc.state_dict())
    # trainable: gradients reach the SSL weights, weights are saved
    enc_t = build_encoder({"name": "ssl", "path": str(tmp_path / "m.pt"), "trainable": True}, input_dim=1)
    enc_t(x, mask).sum().backward()
    assert enc_t.extractor.model.encoder.transformer.layers[-1].feed_forward.output_dense.weight.grad is not None
    assert any(k.startswith("extractor.model.") for k in enc_t.state_dict())
    with pytest.raises(ValueError, match="layer"):
        build_encoder({"name": "ssl", "path": str(tmp_path / "m.pt"), "layer": 3}, input_dim=1)


def test_too_short_waveform_is_an_error():
    model = build_ssl_model(tiny_config(False)).eval()
    ex = SSLLayerExtractor(model)
    with pytest.raises(ValueError, match="waveform 1 .* 10 samples"):
        ex(_wav(2, 800), torch.tensor([800, 10]))


def _tiny_ta_model(kind: str, layer_norm_first: bool, mode: str = "layer_norm"):
    """Tiny random torchaudio models built by torchaudio's own factories."""
    from torchaudio.models import hubert_pretrain_model, wav2vec2_model, wavlm_model

    common = dict(extractor_mode=mode, extractor_conv_layer_config=CONV, extractor_conv_bias=False,
                  encoder_embed_dim=16, encoder_projection_dropout=0.0, encoder_pos_conv_kernel=4,
                  encoder_pos_conv_groups=2, encoder_num_layers=3, encoder_num_heads=2,
                  encoder_attention_dropout=0.0, encoder_ff_interm_features=24, encoder_ff_interm_dropout=0.0,
                  encoder_dropout=0.0, encoder_layer_norm_first=layer_norm_first, encoder_layer_drop=0.0)
    if kind == "wav2vec2":
        return wav2vec2_model(**common, aux_num_out=None).eval()
    if kind == "wavlm":
        return wavlm_model(**common, encoder_num_buckets=8, encoder_max_distance=20, aux_num_out=None).eval()
    hub = hubert_pretrain_model(**common, mask_prob=0.0, mask_selection="static", mask_other=0.0,
                                mask_length=1, no_mask_overlap=False, mask_min_space=1, mask_channel_prob=0.0,
                                mask_channel_selection="static", mask_channel_other=0.0, mask_channel_length=1,
                                no_mask_channel_overlap=False, mask_channel_min_space=1, skip_masked=False,
                                skip_nomask=False, num_classes=5, final_dim=8, feature_grad_mult=None)
    return hub.wav2vec2.eval()


@pytest.mark.parametrize("kind", ["wav2vec2", "hubert", "wavlm"])
@pytest.mark.parametrize("layer_norm_first", [True, False])
def test_pooled_last_layer_equals_model_forward(tmp_path, kind, layer_norm_first):
    """The ssl encoder's last layer is what the model's own forward returns (final LayerNorm of
    pre-LN models included); its mean over valid frames is the pooled embedding."""
    torch.manual_seed(5)
    model = _tiny_ta_model(kind, layer_norm_first)
    ex = SSLLayerExtractor(model)
    assert ex.final_layer_norm is layer_norm_first
    wav = _wav(2, 800, seed=6)
    with torch.no_grad():
        ref0, _ = model(wav[:1])                          # (1, T, D), no padding
        ref1, _ = model(wav[1:, :600])
    layers, mask = ex(wav, torch.tensor([800, 600]))
    t1 = int(mask[1].sum())
    torch.testing.assert_close(layers[-1][0], ref0[0], atol=1e-5, rtol=1e-5)
    torch.testing.assert_close(layers[-1][1, :t1], ref1[0], atol=1e-5, rtol=1e-5)
    # pooled: masked mean of the model's forward output
    from parastyle.nn.pooling import masked_mean
    pooled = masked_mean(layers[-1], mask)
    torch.testing.assert_close(pooled[1], ref1[0].mean(0), atol=1e-5, rtol=1e-5)
    # intermediate layers stay the raw block outputs (extract_features)
    feats, _ = model.extract_features(wav[:1])
    torch.testing.assert_close(layers[0][0], feats[0][0], atol=1e-5, rtol=1e-5)
    if layer_norm_first:   # the raw last block differs from the forward output
        assert (feats[-1][0] - ref0[0]).abs().max() > 1e-2
    # the registered "ssl" encoder (layer -1) pools the same thing; hubert's encoder is a wav2vec2 model
    conf = tiny_config(kind == "wavlm")
    conf.update(encoder_num_layers=3, encoder_layer_norm_first=layer_norm_first)
    save_ssl_model(model, conf, tmp_path / "m.pt")
    enc = build_encoder({"name": "ssl", "path": str(tmp_path / "m.pt"), "layer": -1}, input_dim=1)
    x = wav.clone().unsqueeze(-1)
    smask = torch.zeros(2, 800, dtype=torch.bool)
    smask[0] = True
    smask[1, :600] = True
    emb = enc(x, smask)
    torch.testing.assert_close(emb[0], ref0[0].mean(0), atol=1e-5, rtol=1e-5)
    torch.testing.assert_close(emb[1], ref1[0].mean(0), atol=1e-5, rtol=1e-5)
