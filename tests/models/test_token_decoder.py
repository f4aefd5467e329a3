"""Semantic token decoder: shapes, padding independence, masked loss against a direct computation, bad inputs,
and its token_mel dataset on a fabricated data dir."""
from __future__ import annotations

import kaldiio
import numpy as np
import pytest
import torch

from parastyle.data.lm_dataset import TokenMelDataset
from parastyle.fileio import DataError
from parastyle.models.token_decoder import TokenDecoder


def model():
    torch.manual_seed(0)
    m = TokenDecoder(num_tokens=12, upsample=3, n_mels=5, speaker_dim=4, hidden=16, num_blocks=2, kernel_size=3,
                     dropout=0.0)
    return m.eval()


def test_padding_does_not_change_output():
    m = model()
    tok = torch.randint(0, 12, (3, 7))
    lens = torch.tensor([7, 4, 2])
    spk = torch.randn(3, 4)
    out = m.decode(tok, lens, spk)
    assert out.shape == (3, 21, 5)
    for b in range(3):
        n = int(lens[b])
        alone = m.decode(tok[b:b + 1, :n], lens[b:b + 1], spk[b:b + 1])[0]
        assert torch.allclose(alone, out[b, : n * 3], atol=1e-5)
        assert (out[b, n * 3:] == 0).all()
    # the speaker embedding changes the output
    assert not torch.allclose(m.decode(tok, lens, spk + 1.0), out)


def test_loss_on_valid_frames():
    m = model()
    tok = torch.randint(0, 12, (2, 4))
    tl = torch.tensor([4, 3])
    mel = torch.randn(2, 13, 5)
    ml = torch.tensor([13, 8])
    spk = torch.randn(2, 4)
    out = m({"tokens": tok, "token_lens": tl, "mel": mel, "mel_lens": ml, "spk_emb": spk})
    hat = m.decode(tok, tl, spk)
    terms_l1, terms_l2 = [], []
    for b, n in ((0, 12), (1, 8)):          # min(mel length, tokens * upsample)
        d = hat[b, :n] - mel[b, :n]
        terms_l1.append(d.abs().flatten())
        terms_l2.append((d ** 2).flatten())
    assert torch.allclose(out["losses"]["mel_l1"], torch.cat(terms_l1).mean(), atol=1e-6)
    assert torch.allclose(out["losses"]["mel_l2"], torch.cat(terms_l2).mean(), atol=1e-6)


def test_bad_inputs():
    m = model()
    with pytest.raises(ValueError, match="token id 12 out of range"):
        m.decode(torch.tensor([[1, 12]]), torch.tensor([2]), torch.zeros(1, 4))
    with pytest.raises(ValueError, match="speaker embedding of dim 3"):
        m.decode(torch.tensor([[1, 2]]), torch.tensor([2]), torch.zeros(1, 3))
    with pytest.raises(ValueError, match="no token"):
        m.synthesize([], torch.zeros(4))
    assert m.synthesize([1, 2, 3], torch.zeros(4), num_frames=11).shape == (11, 5)


def test_token_mel_dataset(tmp_path):
    d = tmp_path / "d"
    (d / "sset").mkdir(parents=True)
    utts = ["a-1", "a-2", "b-1"]
    (d / "utt2spk").write_text("a-1 a\na-2 a\nb-1 b\n")
    rng = np.random.default_rng(0)
    with kaldiio.WriteHelper(f"ark,scp:{d}/mel.ark,{d}/mel.scp") as w:
        for u in utts:
            w[u] = rng.standard_normal((9, 5)).astype(np.float32)
    with kaldiio.WriteHelper(f"ark,scp:{d}/spk.ark,{d}/spk_emb.scp") as w:
        for u in utts:
            w[u] = rng.standard_normal(4).astype(np.float32)
    (d / "sset" / "utt2tokens").write_text("a-1 1 2 3\na-2 4 5\nb-1 6 7 8\n")
    ds = TokenMelDataset(d, "sset", num_tokens=12, upsample=3)
    assert ds.lengths() == [9, 6, 9]
    batch = ds.collate([ds[i] for i in range(3)])
    assert batch["tokens"].tolist() == [[1, 2, 3], [4, 5, 0], [6, 7, 8]]
    assert batch["mel"].shape == (3, 9, 5) and batch["spk_emb"].shape == (3, 4)
    out = model()(batch)
    assert torch.isfinite(out["losses"]["mel_l1"])
    (d / "spk_emb.scp").write_text("a-1 " + (d / "spk_emb.scp").read_text().splitlines()[0].split()[1] + "\n")
    with pytest.raises(DataError, match="spk_emb.scp: no line for utterance 'a-2'"):
        TokenMelDataset(d, "sset", num_tokens=12, upsample=3)
