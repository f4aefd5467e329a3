"""The ParaMETA backbones (``transformer``, ``lstm``, ``cnn``, ``qformer``) and the earlier networks kept
under other names: shapes, padding invariance (eval and training mode), equality with independent
references built from torch's own layers, the convolution mask rule, masked BatchNorm, and the
paper's parameter counts."""
import pytest
import torch
import torch.nn.functional as F
from torch import nn

from parastyle.nn.encoders import ENCODERS, build_encoder
from parastyle.nn.encoders.blocks import MaskedBatchNorm, PostNormAttentionBlock, conv_out_lengths, sinusoidal_positions

D = 12
PAPER = ["cnn", "lstm", "qformer", "transformer"]
SMALL = {
    "transformer": {"d_model": 16, "nhead": 2, "num_layers": 2, "output_dim": 10},
    "lstm": {"front_dim": 8, "hidden_size": 9},
    "cnn": {"stem_channels": 4, "blocks": [[6, 2], [6, 1], [8, 2]], "output_dim": 10},
    "qformer": {"d_model": 16, "nhead": 2, "num_queries": 3, "num_layers": 2, "output_dim": 10},
    # earlier networks, kept under other names
    "transformer_wide": {"d_model": 16, "nhead": 2, "dim_feedforward": 32},
    "bilstm": {"hidden_size": 8, "num_layers": 2},
    "cnn1d": {"channels": [8, 12], "kernel_size": 3},
    "qformer_small": {"patch_frames": 3, "num_queries": 4, "d_model": 16, "nhead": 2, "dim_feedforward": 32},
    "tdnn": {"hidden": 8, "output_dim": 6},
}
ALL = list(SMALL)
LENS = [13, 22, 9, 17]


def small(name, **kw):
    torch.manual_seed(0)
    conf = {"name": name, **SMALL[name], **kw}
    if name not in ("cnn1d", "tdnn") and "dropout" not in kw:
        conf["dropout"] = 0.0
    return build_encoder(conf, input_dim=D)


def padded(utts, extra):
    T = max(len(u) for u in utts) + extra
    x = torch.randn(len(utts), T, D) * 100.0                      # large garbage in the padding
    mask = torch.zeros(len(utts), T, dtype=torch.bool)
    for i, u in enumerate(utts):
        x[i, :len(u)] = u
        mask[i, :len(u)] = True
    return x, mask


def utterances(seed=0):
    g = torch.Generator().manual_seed(seed)
    return [torch.randn(n, D, generator=g) for n in LENS]


@pytest.mark.parametrize("name", ALL)
def test_registered_and_shapes(name):
    enc = small(name)
    assert name in ENCODERS
    x, mask = padded(utterances(), 3)
    assert enc(x, mask).shape == (4, enc.output_dim)
    h, m = enc.forward_frames(x, mask)
    assert h.shape[0] == 4 and m.shape == h.shape[:2] and m.dtype == torch.bool


@pytest.mark.parametrize("name", ALL)
def test_padding_never_changes_embedding_eval(name):
    """Each utterance alone (no padding) == the same utterance in a batch padded with garbage."""
    enc = small(name).eval()
    if name == "cnn":                                              # non-trivial running statistics
        with torch.no_grad():
            for mod in enc.modules():
                if isinstance(mod, MaskedBatchNorm):
                    mod.running_mean.uniform_(-1, 1)
                    mod.running_var.uniform_(0.5, 2)
    utts = utterances()
    with torch.no_grad():
        ref = torch.cat([enc(u[None], torch.ones(1, len(u), dtype=torch.bool)) for u in utts])
        for extra in (1, 7):
            x, mask = padded(utts, extra)
            torch.testing.assert_close(enc(x, mask), ref, atol=1e-4, rtol=1e-4)


@pytest.mark.parametrize("name", PAPER)
def test_padding_never_changes_embedding_train_mode(name):
    """In training mode (BatchNorm on batch statistics, dropout 0), appending padding to a batch changes
    neither its embeddings, nor their gradients, nor the running statistics."""
    utts = utterances(1)
    outs, grads, stats = [], [], []
    for extra in (0, 5, 11):
        enc = small(name).train()
        x, mask = padded(utts, extra)
        x.requires_grad_(True)
        y = enc(x, mask)
        (y * torch.linspace(-1, 1, y.numel()).view_as(y)).sum().backward()
        outs.append(y.detach())
        grads.append([p.grad.clone() for p in enc.parameters()])
        stats.append([b.clone() for b in enc.buffers()])
        assert torch.all(x.grad[~mask] == 0)
    for k in (1, 2):
        torch.testing.assert_close(outs[k], outs[0], atol=1e-4, rtol=1e-4)
        for a, b in zip(grads[k], grads[0]):
            torch.testing.assert_close(a, b, atol=1e-4, rtol=1e-3)
        for a, b in zip(stats[k], stats[0]):
            torch.testing.assert_close(a, b)


def test_conv_mask_rule_matches_the_utterance_alone():
    """The valid output length of a convolution is the length the utterance alone would give."""
    for k, s, p in [(4, 4, 0), (3, 2, 1), (3, 1, 1), (1, 2, 0), (5, 3, 2)]:
        conv = nn.Conv1d(1, 1, k, stride=s, padding=p)
        for L in range(max(1, k - 2 * p), 30):
            n = int(conv_out_lengths(torch.tensor([L]), k, s, p))
            assert n == conv(torch.zeros(1, 1, L)).shape[-1], (k, s, p, L)


@pytest.mark.parametrize("name", PAPER)
def test_gradients_reach_every_parameter(name):
    enc = small(name).train()
    x, mask = padded(utterances(), 2)
    enc(x, mask).pow(2).sum().backward()
    for n, p in enc.named_parameters():
        assert p.grad is not None and torch.isfinite(p.grad).all() and p.grad.abs().sum() > 0, n


@pytest.mark.parametrize("name", PAPER + ["transformer_wide", "bilstm", "qformer_small"])
def test_empty_utterance_is_an_error(name):
    enc = small(name)
    with pytest.raises(ValueError, match="no valid frame"):
        enc(torch.randn(2, 9, D), torch.tensor([[True] * 9, [False] * 9]))


@pytest.mark.parametrize("name", ["lstm", "qformer", "transformer"])
def test_too_short_for_the_front_is_an_error(name):
    enc = small(name)
    with pytest.raises(ValueError, match="utterance 1 of the batch has 3 valid frames; the front needs at least 4"):
        enc(torch.randn(2, 9, D), torch.tensor([[True] * 9, [True] * 3 + [False] * 6]))


def test_mask_not_left_aligned_is_an_error():
    enc = small("transformer")
    with pytest.raises(ValueError, match="left-aligned"):
        enc(torch.randn(1, 9, D), torch.tensor([[False] + [True] * 8]))


# ----------------------------------------------------------------------------- independent references
def _reference_block(block, x, kv=None, key_mask=None):
    """Post-norm block recomputed with ``nn.MultiheadAttention`` holding the block's weights."""
    d = block.d_model
    mha = nn.MultiheadAttention(d, block.nhead, batch_first=True)
    with torch.no_grad():
        if block.cross:
            mha.in_proj_weight.copy_(torch.cat([block.q_proj.weight, block.kv_proj.weight]))
            mha.in_proj_bias.copy_(torch.cat([block.q_proj.bias, block.kv_proj.bias]))
        else:
            mha.in_proj_weight.copy_(block.qkv_proj.weight)
            mha.in_proj_bias.copy_(block.qkv_proj.bias)
        mha.out_proj.weight.copy_(block.out_proj.weight)
        mha.out_proj.bias.copy_(block.out_proj.bias)
    kv = x if kv is None else kv
    a = mha(x, kv, kv, key_padding_mask=None if key_mask is None else ~key_mask, need_weights=False)[0]
    x = F.layer_norm(x + a, (d,), block.norm1.weight, block.norm1.bias)
    h = block.ff2(F.gelu(block.ff1(x)))
    return F.layer_norm(x + h, (d,), block.norm2.weight, block.norm2.bias)


def test_self_attention_block_equals_torch_post_norm_encoder_layer():
    torch.manual_seed(0)
    block = PostNormAttentionBlock(16, 4, dropout=0.0).eval()
    layer = nn.TransformerEncoderLayer(16, 4, 64, dropout=0.0, activation="gelu", batch_first=True,
                                       norm_first=False).eval()
    with torch.no_grad():
        layer.self_attn.in_proj_weight.copy_(block.qkv_proj.weight)
        layer.self_attn.in_proj_bias.copy_(block.qkv_proj.bias)
        layer.self_attn.out_proj.load_state_dict(block.out_proj.state_dict())
        layer.linear1.load_state_dict(block.ff1.state_dict())
        layer.linear2.load_state_dict(block.ff2.state_dict())
        layer.norm1.load_state_dict(block.norm1.state_dict())
        layer.norm2.load_state_dict(block.norm2.state_dict())
    x = torch.randn(3, 7, 16)
    mask = torch.arange(7)[None] < torch.tensor([7, 4, 2])[:, None]
    with torch.no_grad():
        out, ref = block(x, key_mask=mask), layer(x, src_key_padding_mask=~mask)
    torch.testing.assert_close(out[mask], ref[mask], atol=1e-5, rtol=1e-5)
    assert sum(p.numel() for p in block.parameters()) == 12 * 16 * 16 + 13 * 16


def test_attention_runs_in_float32_under_cpu_bf16_autocast(monkeypatch):
    """Under CPU bf16 autocast the projections run in bfloat16 and the attention core in float32; the block
    then stays within bfloat16 rounding of the float32 block, and padded keys still change nothing."""
    import parastyle.nn.encoders.blocks as blocks
    torch.manual_seed(0)
    block = PostNormAttentionBlock(16, 4, dropout=0.0).eval()
    x = torch.randn(3, 7, 16)
    mask = torch.arange(7)[None] < torch.tensor([7, 4, 2])[:, None]
    seen = []
    real_sdpa = F.scaled_dot_product_attention

    def spy(q, k, v, **kw):
        seen.append((q.dtype, torch.is_autocast_enabled("cpu")))
        return real_sdpa(q, k, v, **kw)
    monkeypatch.setattr(blocks.F, "scaled_dot_product_attention", spy)
    with torch.no_grad():
        ref = block(x, key_mask=mask)
        with torch.autocast("cpu", dtype=torch.bfloat16):
            out = block(x, key_mask=mask)
            x2 = torch.cat([x, torch.randn(3, 5, 16)], 1)
            out2 = block(x2, key_mask=torch.cat([mask, torch.zeros(3, 5, dtype=torch.bool)], 1))
    assert seen[0] == (torch.float32, False) and seen[1] == (torch.float32, False)
    torch.testing.assert_close(out.float()[mask], ref[mask], atol=0.05, rtol=0.05)
    torch.testing.assert_close(out2[:, :7].float()[mask], out.float()[mask])


def test_transformer_equals_reference():
    enc = small("transformer").eval()
    u = utterances()[0]                                            # 13 frames -> 3 valid after the front
    with torch.no_grad():
        h = F.conv1d(u.t()[None], enc.front.weight, enc.front.bias, stride=4)[0].t()    # (3, 16), 13th frame dropped
        assert h.shape == (3, 16)
        h = (h + sinusoidal_positions(3, 16))[None]
        for block in enc.blocks:
            h = _reference_block(block, h)
        ref = enc.out(h[0].sum(0))
        torch.testing.assert_close(enc(u[None], torch.ones(1, 13, dtype=torch.bool))[0], ref, atol=1e-5, rtol=1e-4)


def test_lstm_is_the_final_state_of_a_step_by_step_loop():
    enc = small("lstm").eval()
    x, mask = padded(utterances(), 6)
    out = enc(x, mask)
    lstm = enc.lstm
    cell = nn.LSTMCell(lstm.input_size, lstm.hidden_size)
    with torch.no_grad():
        cell.weight_ih.copy_(lstm.weight_ih_l0)
        cell.weight_hh.copy_(lstm.weight_hh_l0)
        cell.bias_ih.copy_(lstm.bias_ih_l0)
        cell.bias_hh.copy_(lstm.bias_hh_l0)
    for b, n in enumerate(LENS):
        frames = x[b, : n - n % 4].reshape(n // 4, 4, D)             # windows of 4 frames, time-major
        front = torch.einsum("tkd,cdk->tc", frames, enc.front.weight) + enc.front.bias
        h = c = torch.zeros(1, lstm.hidden_size)
        for t in range(front.shape[0]):
            h, c = cell(front[t:t + 1], (h, c))
        torch.testing.assert_close(out[b], h[0], atol=1e-5, rtol=1e-4)


def _reference_cnn(enc, x, train):
    """The ResNet recomputed with functional conv2d / batch_norm on an unpadded batch (all lengths equal)."""
    def bn(h, mod):
        rm, rv = mod.running_mean.clone(), mod.running_var.clone()
        return F.batch_norm(h, rm, rv, mod.weight, mod.bias, training=train, momentum=mod.momentum, eps=mod.eps)

    h = x.transpose(1, 2).unsqueeze(1)
    h = F.relu(bn(F.conv2d(h, enc.stem.weight, padding=1), enc.stem_bn))
    for blk in enc.blocks:
        s = blk.stride
        a = F.relu(bn(F.conv2d(h, blk.conv1.weight, stride=s, padding=1), blk.bn1))
        a = bn(F.conv2d(a, blk.conv2.weight, padding=1), blk.bn2)
        sc = h if blk.shortcut is None else bn(F.conv2d(h, blk.shortcut.weight, stride=s), blk.bn_sc)
        h = F.relu(a + sc)
    return enc.out(h.mean((2, 3)))


@pytest.mark.parametrize("train", [False, True])
def test_cnn_equals_plain_resnet_without_padding(train):
    enc = small("cnn").train(train)
    with torch.no_grad():
        for mod in enc.modules():
            if isinstance(mod, MaskedBatchNorm):
                mod.running_mean.uniform_(-1, 1)
                mod.running_var.uniform_(0.5, 2)
                mod.weight.uniform_(0.5, 1.5)
                mod.bias.uniform_(-0.5, 0.5)
    x = torch.randn(3, 19, D)
    ref = _reference_cnn(enc, x, train)
    torch.testing.assert_close(enc(x, torch.ones(3, 19, dtype=torch.bool)), ref, atol=1e-4, rtol=1e-4)


def test_cnn_training_statistics_are_those_of_the_valid_frames():
    """A batch of two different lengths: the stem BatchNorm's batch mean is the mean over valid frames only."""
    enc = small("cnn").train()
    x, mask = padded(utterances()[:2], 4)
    bn = enc.stem_bn
    with torch.no_grad():
        stem = F.conv2d(x.masked_fill(~mask[..., None], 0).transpose(1, 2).unsqueeze(1), enc.stem.weight, padding=1)
        valid = torch.cat([stem[b, :, :, :n] for b, n in enumerate(LENS[:2])], dim=-1)    # (C, F, sum n)
        mean = valid.mean((1, 2))
        var = valid.var((1, 2), unbiased=True)
        enc(x, mask)
    torch.testing.assert_close(bn.running_mean, 0.1 * mean)
    torch.testing.assert_close(bn.running_var, 0.9 + 0.1 * var)


def test_qformer_equals_reference():
    enc = small("qformer").eval()
    u = utterances()[3]                                            # 17 frames -> 4 time patches
    with torch.no_grad():
        patches = []
        for f in range(D // 4):                                    # frequency-major, as the encoder orders them
            for t in range(4):
                win = u[4 * t:4 * t + 4, 4 * f:4 * f + 4].t()      # (freq 4, time 4)
                patches.append((enc.front.weight[:, 0] * win).sum((1, 2)) + enc.front.bias
                               + sinusoidal_positions(4, 16)[t])
        kv = torch.stack(patches)[None]
        q = enc.queries[None]
        for block in enc.blocks:
            q = _reference_block(block, q, kv)
        ref = enc.out(q.flatten())
        torch.testing.assert_close(enc(u[None], torch.ones(1, 17, dtype=torch.bool))[0], ref, atol=1e-5, rtol=1e-4)


def test_masked_batchnorm_equals_batchnorm_on_valid_positions():
    torch.manual_seed(3)
    mbn = MaskedBatchNorm(5).train()
    ref = nn.BatchNorm2d(5).train()
    with torch.no_grad():
        mbn.weight.uniform_(0.5, 1.5), mbn.bias.uniform_(-1, 1)
        ref.weight.copy_(mbn.weight), ref.bias.copy_(mbn.bias)
    lens = [6, 3, 8]
    x = torch.randn(3, 5, 4, 8) * 3 + 1
    mask = torch.arange(8)[None] < torch.tensor(lens)[:, None]
    x = x * mask[:, None, None, :]
    xr = torch.cat([x[b, :, :, :n] for b, n in enumerate(lens)], dim=-1)[None].detach().requires_grad_(True)
    x.requires_grad_(True)
    y = mbn(x, mask)
    yr = ref(xr)
    w = torch.randn(5, 4, sum(lens))
    (yr[0] * w).sum().backward()
    wp = torch.zeros(3, 5, 4, 8)
    o = 0
    for b, n in enumerate(lens):
        torch.testing.assert_close(y[b, :, :, :n], yr[0, :, :, o:o + n], atol=1e-5, rtol=1e-5)
        assert torch.all(y[b, :, :, n:] == 0)
        wp[b, :, :, :n] = w[:, :, o:o + n]
        o += n
    (y * wp).sum().backward()
    o = 0
    for b, n in enumerate(lens):
        torch.testing.assert_close(x.grad[b, :, :, :n], xr.grad[0, :, :, o:o + n], atol=1e-5, rtol=1e-4)
        o += n
    torch.testing.assert_close(mbn.weight.grad, ref.weight.grad, atol=1e-4, rtol=1e-4)
    torch.testing.assert_close(mbn.bias.grad, ref.bias.grad, atol=1e-4, rtol=1e-4)
    torch.testing.assert_close(mbn.running_mean, ref.running_mean)
    torch.testing.assert_close(mbn.running_var, ref.running_var)
    mbn.eval(), ref.eval()
    with torch.no_grad():
        torch.testing.assert_close(mbn(x, mask)[0, :, :, :6], ref(x[:1, :, :, :6])[0], atol=1e-5, rtol=1e-5)


def test_masked_batchnorm_gradcheck():
    mbn = MaskedBatchNorm(3).double().train()
    x = torch.randn(2, 3, 2, 5, dtype=torch.float64)
    mask = torch.tensor([[True] * 5, [True] * 3 + [False] * 2])
    x = (x * mask[:, None, None, :]).requires_grad_(True)
    assert torch.autograd.gradcheck(lambda a, w, b: _fn(mbn, a, w, b, mask), (x, mbn.weight, mbn.bias))


def _fn(mbn, x, w, b, mask):
    from parastyle.nn.encoders.blocks import _MaskedBatchNormFn

    m = mask[:, None, None, :].to(x.dtype)
    return _MaskedBatchNormFn.apply(x, m, w, b, float(mask.sum()) * x.shape[2], mbn.eps)[0]


def test_pooling_rules():
    from parastyle.nn.pooling import masked_mean, masked_sum

    x = torch.randn(2, 6, 3)
    mask = torch.tensor([[True] * 6, [True] * 2 + [False] * 4])
    torch.testing.assert_close(masked_sum(x, mask), torch.stack([x[0].sum(0), x[1, :2].sum(0)]))
    torch.testing.assert_close(masked_mean(x, mask), torch.stack([x[0].mean(0), x[1, :2].mean(0)]))


# ----------------------------------------------------------------------------- paper parameter counts
ENCODER_M = {"transformer": 0.67, "lstm": 2.58, "cnn": 0.76, "qformer": 1.19}
FULL_M = {"transformer": 1.86, "lstm": 3.77, "cnn": 1.94, "qformer": 2.38}


@pytest.mark.parametrize("name", PAPER)
def test_default_sizes_match_the_paper_parameter_counts(name):
    """The paper counts the speech side (encoder + 4 x 192-d subspace maps) plus the text side's
    Linear(768, 768) of a 768-d sentence encoder; each within 1 %."""
    from parastyle.models.parameta import ParaMETA

    factors = {f: ["a", "b"] for f in ("emotion", "age", "gender", "language")}
    model = ParaMETA(80, factors, {"name": name}, use_text=False)
    counts = model.parameter_counts(text_dim=768)
    n_enc = sum(p.numel() for p in model.encoder.parameters())
    assert counts["encoder"] == n_enc
    # independent count of the rest: no META projection (the backbones end in 768-d), 4 x Linear(768, 192),
    # text side Linear(768, 768) cut into the same four slices
    assert isinstance(model.meta_proj, nn.Identity)
    assert counts["paper"] == n_enc + 4 * (768 * 192 + 192) + (768 * 768 + 768)
    assert abs(n_enc / 1e6 - ENCODER_M[name]) / ENCODER_M[name] < 0.01, n_enc
    assert abs(counts["paper"] / 1e6 - FULL_M[name]) / FULL_M[name] < 0.01, counts
