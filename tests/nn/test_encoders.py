import pytest
import torch

from parastyle.nn.encoders import ENCODERS, build_encoder

NAMES = ["cnn", "lstm", "qformer", "transformer"]
SMALL = {
    "cnn": {"channels": [8, 12], "kernel_size": 3},
    "lstm": {"hidden_size": 8, "num_layers": 2},
    "qformer": {"patch_frames": 3, "num_queries": 4, "d_model": 16, "nhead": 2, "dim_feedforward": 32},
    "transformer": {"d_model": 16, "nhead": 2, "dim_feedforward": 32},
}


def _full_parameta_params(enc, meta_dim=768, sub_dim=192, n_factors=4):
    """Encoder + META projection + one projection per factor (what the paper counts)."""
    n_enc = sum(p.numel() for p in enc.parameters())
    return n_enc + enc.output_dim * meta_dim + meta_dim + n_factors * (meta_dim * sub_dim + sub_dim)


@pytest.mark.parametrize("name", NAMES)
def test_registered_and_shapes(name):
    enc = build_encoder({"name": name, **SMALL[name]}, input_dim=10)
    assert name in ENCODERS
    x = torch.randn(3, 11, 10)
    mask = torch.ones(3, 11, dtype=torch.bool)
    assert enc(x, mask).shape == (3, enc.output_dim)
    h, m = enc.forward_frames(x, mask)
    assert h.shape[0] == 3 and h.shape[-1] == enc.output_dim and m.shape == h.shape[:2]


@pytest.mark.parametrize("name", NAMES)
@pytest.mark.parametrize("train_mode", [False, True])
def test_padding_never_changes_embedding(name, train_mode):
    torch.manual_seed(0)
    enc = build_encoder({"name": name, "dropout": 0.0, **SMALL[name]}, input_dim=10)
    enc.train(train_mode)
    lens = [7, 11, 5]
    utts = [torch.randn(n, 10) for n in lens]
    # Reference: each utterance alone, without padding.
    ref = torch.cat([enc(u[None], torch.ones(1, len(u), dtype=torch.bool)) for u in utts])
    # Batched with 6 extra frames of large garbage after every utterance, masked False.
    T = max(lens) + 6
    x = torch.randn(3, T, 10) * 100.0
    mask = torch.zeros(3, T, dtype=torch.bool)
    for i, u in enumerate(utts):
        x[i, : len(u)] = u
        mask[i, : len(u)] = True
    out = enc(x, mask)
    torch.testing.assert_close(out, ref, atol=1e-5, rtol=1e-4)


@pytest.mark.parametrize("name", NAMES)
def test_gradients_reach_every_parameter(name):
    enc = build_encoder({"name": name, **SMALL[name]}, input_dim=10)
    x = torch.randn(2, 9, 10)
    mask = torch.tensor([[True] * 9, [True] * 4 + [False] * 5])
    enc(x, mask).pow(2).sum().backward()
    for n, p in enc.named_parameters():
        assert p.grad is not None and torch.isfinite(p.grad).all(), n


@pytest.mark.parametrize("name", ["lstm", "transformer", "qformer"])
def test_empty_utterance_is_an_error(name):
    enc = build_encoder({"name": name, **SMALL[name]}, input_dim=10)
    with pytest.raises(ValueError, match="no valid frame"):
        enc(torch.randn(2, 5, 10), torch.tensor([[True] * 5, [False] * 5]))


@pytest.mark.parametrize("name,target", [("lstm", 3.77e6), ("transformer", 1.86e6)])
def test_default_sizes_match_paper_parameter_counts(name, target):
    enc = build_encoder({"name": name}, input_dim=80)
    n = _full_parameta_params(enc)
    assert abs(n - target) / target < 0.05, n


def test_lstm_final_state_matches_manual_loop():
    torch.manual_seed(1)
    enc = build_encoder({"name": "lstm", "hidden_size": 6, "num_layers": 1, "bidirectional": False}, input_dim=4)
    x = torch.randn(1, 5, 4)
    out = enc(x, torch.ones(1, 5, dtype=torch.bool))
    cell = torch.nn.LSTMCell(4, 6)
    cell.weight_ih.data, cell.weight_hh.data = enc.lstm.weight_ih_l0.data, enc.lstm.weight_hh_l0.data
    cell.bias_ih.data, cell.bias_hh.data = enc.lstm.bias_ih_l0.data, enc.lstm.bias_hh_l0.data
    h = c = torch.zeros(1, 6)
    for t in range(5):
        h, c = cell(x[:, t], (h, c))
    torch.testing.assert_close(out, h)


def test_pooling_rules():
    # Transformer: sum over valid frames; CNN: mean over valid frames.
    torch.manual_seed(0)
    x = torch.randn(2, 8, 10)
    mask = torch.tensor([[True] * 8, [True] * 3 + [False] * 5])
    tr = build_encoder({"name": "transformer", "dropout": 0.0, **SMALL["transformer"]}, input_dim=10).eval()
    h, _ = tr.forward_frames(x, mask)
    torch.testing.assert_close(tr(x, mask), torch.stack([h[0, :8].sum(0), h[1, :3].sum(0)]))
    cnn = build_encoder({"name": "cnn", "dropout": 0.0, **SMALL["cnn"]}, input_dim=10).eval()
    h, _ = cnn.forward_frames(x, mask)
    torch.testing.assert_close(cnn(x, mask), torch.stack([h[0, :8].mean(0), h[1, :3].mean(0)]))
