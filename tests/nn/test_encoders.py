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


def _cell_loop(lstm, xs):
    """Final hidden state of a one-layer unidirectional ``nn.LSTM`` run step by step with an LSTMCell."""
    cell = torch.nn.LSTMCell(lstm.input_size, lstm.hidden_size)
    cell.weight_ih.data, cell.weight_hh.data = lstm.weight_ih_l0.data, lstm.weight_hh_l0.data
    cell.bias_ih.data, cell.bias_hh.data = lstm.bias_ih_l0.data, lstm.bias_hh_l0.data
    h = c = torch.zeros(1, lstm.hidden_size)
    for t in range(xs.shape[0]):
        h, c = cell(xs[t:t + 1], (h, c))
    return h[0]


def test_lstm_final_state_matches_manual_loop():
    torch.manual_seed(1)
    enc = build_encoder({"name": "lstm", "hidden_size": 6, "num_layers": 1, "bidirectional": True}, input_dim=4)
    x = torch.randn(2, 7, 4)
    mask = torch.tensor([[True] * 7, [True] * 5 + [False] * 2])
    out = enc(x, mask)
    for b, n in enumerate([7, 5]):
        fwd = _cell_loop(enc.forward_layers[0], x[b, :n])
        bwd = _cell_loop(enc.backward_layers[0], x[b, :n].flip(0))
        torch.testing.assert_close(out[b], torch.cat([fwd, bwd]))


def test_lstm_matches_torch_bidirectional_lstm():
    # Same weights in torch's fused bidirectional 2-layer LSTM (packed) -> same final states.
    torch.manual_seed(2)
    enc = build_encoder({"name": "lstm", "hidden_size": 5, "num_layers": 2, "dropout": 0.0}, input_dim=3)
    ref = torch.nn.LSTM(3, 5, num_layers=2, bidirectional=True, batch_first=True)
    for layer in range(2):
        for d, mods in enumerate([enc.forward_layers, enc.backward_layers]):
            sfx = f"l{layer}" + ("_reverse" if d else "")
            for name in ["weight_ih", "weight_hh", "bias_ih", "bias_hh"]:
                getattr(ref, f"{name}_{sfx}").data.copy_(getattr(mods[layer], f"{name}_l0").data)
    x = torch.randn(3, 8, 3)
    lens = torch.tensor([8, 3, 6])
    mask = torch.arange(8)[None] < lens[:, None]
    packed = torch.nn.utils.rnn.pack_padded_sequence(x, lens, batch_first=True, enforce_sorted=False)
    _, (h_n, _) = ref(packed)
    torch.testing.assert_close(enc(x, mask), torch.cat([h_n[-2], h_n[-1]], dim=-1), atol=1e-5, rtol=1e-4)


def test_reverse_valid_is_an_involution():
    from parastyle.nn.encoders.lstm import reverse_valid

    x = torch.arange(10.0).reshape(2, 5, 1)
    lens = torch.tensor([5, 3])
    r = reverse_valid(x, lens)
    assert r[0, :, 0].tolist() == [4, 3, 2, 1, 0] and r[1, :, 0].tolist() == [7, 6, 5, 8, 9]
    torch.testing.assert_close(reverse_valid(r, lens), x)


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
