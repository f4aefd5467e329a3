"""SSET tokenizer: RVQ codes equal brute-force residual nearest codes, token layout round trip,
perplexity against a direct histogram, training lowers the reconstruction error."""
from __future__ import annotations

import math

import pytest
import torch

from parastyle.models.sset import SSETTokenizer, perplexity


def batch_of(x, lens):
    mask = torch.arange(x.shape[1])[None] < lens[:, None]
    return {"feats": x * mask.unsqueeze(-1), "feat_lens": lens, "mask": mask, "utt_ids": [str(i) for i in range(len(x))]}


def test_rvq_codes_equal_brute_force_residual_nearest():
    torch.manual_seed(0)
    m = SSETTokenizer(feat_dim=5, hidden=16, num_blocks=1, stride=2, code_dim=4, num_codebooks=3, codebook_size=8)
    x = torch.randn(3, 11, 5)
    lens = torch.tensor([11, 9, 6])
    m.train()
    for _ in range(3):                       # k-means init + EMA updates
        m(batch_of(x, lens))
    m.eval()
    codes, clen = m.codes(x, lens)
    assert codes.shape == (3, 6, 3) and clen.tolist() == [6, 5, 3]
    with torch.no_grad():
        z = m.encode_continuous(x, lens)
    books = m.rvq.codebooks.detach()         # (K, C, d)
    for b in range(3):
        for t in range(int(clen[b])):
            r = z[b, t].clone()
            for k in range(3):
                d = [float(((r - books[k, c]) ** 2).sum()) for c in range(8)]
                got = int(codes[b, t, k])
                # the chosen code is the nearest one (up to float rounding among exact ties)
                assert d[got] <= min(d) + 1e-6 * max(1.0, max(d)), (b, t, k, d, got)
                r = r - books[k, got]
    # decoding the flat tokens reproduces decoding the quantised vectors
    toks = m.tokens(codes[0, :6])
    assert toks.tolist() == [int(codes[0, t, k]) + 8 * k for t in range(6) for k in range(3)]
    assert torch.equal(m.codes_of_tokens(toks), codes[0, :6])
    q = sum(books[k, codes[0, :6, k]] for k in range(3))
    ref = m.decode_quantized(q[None], 11)[0]
    assert torch.allclose(m.decode_tokens(toks, 11), ref, atol=1e-5)
    with pytest.raises(ValueError, match="3-codebook layout"):
        m.codes_of_tokens(torch.tensor([9, 1, 17]))


def test_perplexity_against_histogram():
    codes = torch.tensor([0, 0, 1, 3, 3, 3, 3, 2])
    p = [2 / 8, 1 / 8, 1 / 8, 4 / 8]
    ref = math.exp(-sum(x * math.log(x) for x in p))
    assert perplexity(codes, 6) == pytest.approx(ref)
    assert perplexity(torch.arange(5), 5) == pytest.approx(5.0)


def test_training_reduces_reconstruction_masked_loss():
    torch.manual_seed(1)
    m = SSETTokenizer(feat_dim=4, hidden=32, num_blocks=1, stride=2, code_dim=8, num_codebooks=2, codebook_size=16)
    # structured features: a few prototypes repeated in runs
    protos = torch.randn(6, 4)
    x = protos[torch.randint(0, 6, (8, 10))].repeat_interleave(2, dim=1)
    lens = torch.full((8,), 20)
    lens[3] = 13
    b = batch_of(x, lens)
    opt = torch.optim.Adam(m.parameters(), lr=3e-3)
    first = None
    for step in range(120):
        out = m(b)
        loss = sum(out["losses"].values())
        opt.zero_grad()
        loss.backward()
        opt.step()
        first = first if first is not None else float(out["metrics"]["recon_mse"])
    last = float(m(b)["metrics"]["recon_mse"])
    assert last < 0.5 * first
    assert 1.0 <= out["metrics"]["perplexity_0"] <= 16
    # the reconstruction loss counts valid frames only (masked mean over features)
    m.eval()
    mask = b["mask"].unsqueeze(-1).float()
    cmask = torch.arange(10)[None] < torch.tensor([10, 10, 10, 7, 10, 10, 10, 10])[:, None]   # ceil(len / 2)
    q = m.rvq(m.encode_continuous(b["feats"], lens), mask=cmask, freeze_codebook=True)[0]
    rec = m.decode_quantized(q, 20, cmask.sum(1))
    ref = (((rec - b["feats"]) ** 2) * mask).sum() / (mask.sum() * 4)
    assert torch.allclose(m(b)["losses"]["recon"], ref, atol=1e-6)


def test_codes_do_not_depend_on_batch_padding():
    torch.manual_seed(2)
    m = SSETTokenizer(feat_dim=3, hidden=8, num_blocks=2, stride=2, code_dim=4, num_codebooks=2, codebook_size=8,
                      kmeans_init=False)
    m.eval()
    x = torch.randn(3, 13, 3)
    lens = torch.tensor([13, 8, 5])
    x = x * (torch.arange(13)[None] < lens[:, None]).unsqueeze(-1)
    x[2, 5:] = 7.0                        # garbage beyond the end must not matter
    codes, clen = m.codes(x, lens)
    for b in range(3):
        n = int(lens[b])
        alone, cl = m.codes(x[b:b + 1, :n], lens[b:b + 1])
        assert torch.equal(alone[0, : int(cl[0])], codes[b, : int(clen[b])])
        za = m.encode_continuous(x[b:b + 1, :n])
        assert torch.allclose(za[0], m.encode_continuous(x, lens)[b, : za.shape[1]], atol=1e-5)
