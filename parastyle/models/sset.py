"""SSET: semantic speech embedding tokenization (PolySpeech, arXiv 2406.07801).

A 1-D convolutional encoder maps the semantic embeddings ``(B, T, D)`` of a frozen SSL layer (or
of a toolkit CTC encoder) to ``(B, T / stride, d_code)``; a residual vector quantiser (K
codebooks of C codes, vector-quantize-pytorch's ``ResidualVQ``: EMA codebook updates, k-means
initialisation, dead-code restart below ``threshold_ema_dead_code`` EMA hits, commitment loss)
turns every frame into K code indices; a convolutional decoder (transposed convolution back to
the input rate) reconstructs the semantic embeddings. Training minimises
``MSE(reconstruction, input)`` on valid frames + ``commitment_weight * ||z - sg(q)||^2``.

Metrics: ``recon_mse`` (per feature over valid frames), ``perplexity_<k>`` of each codebook on
the batch (``exp(H(code histogram))``; C = uniform use) and ``usage_<k>`` (fraction of codes used).

Tokens for the LM (:meth:`SSETTokenizer.tokens`): the K codes of a frame are flattened
frame-major with offsets, ``token = k * C + code_k``, so a token sequence has ``K * T'`` entries
over a vocabulary of ``K * C`` (``K = 1``: the code itself; the paper's default is one codebook of
2048).

Config (``model``)::

    name: sset
    hidden: 256, num_blocks: 2, kernel_size: 3, stride: 2, code_dim: 64
    num_codebooks: 1, codebook_size: 2048
    decay: 0.99, commitment_weight: 0.25, kmeans_init: true, threshold_ema_dead_code: 2
"""
from __future__ import annotations

import math
from typing import Dict, List, Optional, Tuple

import torch
import torch.nn.functional as F
from torch import nn

from parastyle.models import MODELS


class ResBlock(nn.Module):
    def __init__(self, ch: int, k: int):
        super().__init__()
        self.net = nn.Sequential(nn.GELU(), nn.Conv1d(ch, ch, k, padding=k // 2), nn.GELU(), nn.Conv1d(ch, ch, 1))

    def forward(self, x):
        return x + self.net(x)


def perplexity(codes: torch.Tensor, num_codes: int) -> float:
    """``exp(entropy)`` of the histogram of ``codes`` (any shape) over ``num_codes`` codes."""
    counts = torch.bincount(codes.reshape(-1).long(), minlength=num_codes).double()
    p = counts / counts.sum().clamp_min(1)
    ent = -(p[p > 0] * p[p > 0].log()).sum()
    return float(ent.exp())


@MODELS.register("sset")
class SSETTokenizer(nn.Module):
    def __init__(self, feat_dim: int, hidden: int = 256, num_blocks: int = 2, kernel_size: int = 3, stride: int = 2,
                 code_dim: int = 64, num_codebooks: int = 1, codebook_size: int = 2048, decay: float = 0.99,
                 commitment_weight: float = 0.25, kmeans_init: bool = True, threshold_ema_dead_code: float = 2.0):
        super().__init__()
        from vector_quantize_pytorch import ResidualVQ

        if stride < 1:
            raise ValueError(f"stride must be >= 1, got {stride}")
        self.feat_dim, self.stride = int(feat_dim), int(stride)
        self.num_codebooks, self.codebook_size = int(num_codebooks), int(codebook_size)
        k = int(kernel_size)
        # every layer's output is zeroed on padded frames, so an utterance's codes do not depend on the
        # padding of its batch (the convolutions see zeros beyond the end, as for the utterance alone)
        self.enc_in = nn.ModuleList([nn.Conv1d(feat_dim, hidden, k, padding=k // 2)] +
                                    [ResBlock(hidden, k) for _ in range(num_blocks)])
        self.down = (nn.Conv1d(hidden, hidden, 2 * stride, stride=stride, padding=stride // 2) if stride > 1
                     else nn.Conv1d(hidden, hidden, 1))
        self.enc_out = nn.ModuleList([ResBlock(hidden, k) for _ in range(num_blocks)] + [nn.Conv1d(hidden, code_dim, 1)])
        self.rvq = ResidualVQ(dim=code_dim, num_quantizers=self.num_codebooks, codebook_size=self.codebook_size,
                              decay=decay, commitment_weight=commitment_weight, kmeans_init=kmeans_init,
                              kmeans_iters=10, threshold_ema_dead_code=threshold_ema_dead_code)
        self.dec_in = nn.ModuleList([nn.Conv1d(code_dim, hidden, k, padding=k // 2)] +
                                    [ResBlock(hidden, k) for _ in range(num_blocks)])
        self.up = (nn.ConvTranspose1d(hidden, hidden, 2 * stride, stride=stride, padding=stride // 2) if stride > 1
                   else nn.Conv1d(hidden, hidden, 1))
        self.dec_out = nn.ModuleList([ResBlock(hidden, k) for _ in range(num_blocks)] + [nn.Conv1d(hidden, feat_dim, 1)])

    @classmethod
    def from_config(cls, conf: dict, task) -> "SSETTokenizer":
        return cls(int(task.feat_dim), **conf)

    @property
    def vocab_size(self) -> int:
        return self.num_codebooks * self.codebook_size

    def code_lengths(self, lens: torch.Tensor) -> torch.Tensor:
        """Code frames of inputs of ``lens`` frames: ``ceil(T / stride)``."""
        return torch.div(lens + self.stride - 1, self.stride, rounding_mode="floor")

    @staticmethod
    def _masked(layers, x: torch.Tensor, m: torch.Tensor) -> torch.Tensor:
        for i, layer in enumerate(layers):
            x = layer(F.gelu(x) if i and not isinstance(layer, ResBlock) else x) * m
        return x

    def encode_continuous(self, feats: torch.Tensor, lens: Optional[torch.Tensor] = None) -> torch.Tensor:
        """``(B, T, D)`` (valid frames ``lens``, default all) -> pre-quantisation ``(B, ceil(T / stride), code_dim)``."""
        B, T, _ = feats.shape
        lens = torch.full((B,), T, device=feats.device) if lens is None else lens
        Tp = math.ceil(T / self.stride) * self.stride
        x = F.pad(feats, (0, 0, 0, Tp - T)).transpose(1, 2)
        m = (torch.arange(Tp, device=x.device)[None] < lens[:, None]).unsqueeze(1).to(x.dtype)
        x = self._masked(self.enc_in, x * m, m)
        cm = (torch.arange(Tp // self.stride, device=x.device)[None] < self.code_lengths(lens)[:, None])
        cm = cm.unsqueeze(1).to(x.dtype)
        x = self.down(F.gelu(x)) * cm
        x = self._masked(self.enc_out, x, cm)
        return x.transpose(1, 2)

    def decode_quantized(self, q: torch.Tensor, T: int, code_lens: Optional[torch.Tensor] = None) -> torch.Tensor:
        """``(B, T', code_dim)`` (valid code frames ``code_lens``) -> ``(B, T, D)``."""
        B, Tq, _ = q.shape
        code_lens = torch.full((B,), Tq, device=q.device) if code_lens is None else code_lens
        cm = (torch.arange(Tq, device=q.device)[None] < code_lens[:, None]).unsqueeze(1).to(q.dtype)
        x = self._masked(self.dec_in, q.transpose(1, 2) * cm, cm)
        x = self.up(F.gelu(x))
        m = (torch.arange(x.shape[-1], device=q.device)[None] < (code_lens * self.stride)[:, None])
        m = m.unsqueeze(1).to(q.dtype)
        y = self._masked(self.dec_out, x * m, m).transpose(1, 2)
        if y.shape[1] < T:
            y = F.pad(y, (0, 0, 0, T - y.shape[1]))
        return y[:, :T]

    def forward(self, batch) -> Dict[str, Dict[str, torch.Tensor]]:
        feats, lens = batch["feats"], batch["feat_lens"]
        T = feats.shape[1]
        z = self.encode_continuous(feats, lens)
        clen = self.code_lengths(lens)
        cmask = torch.arange(z.shape[1], device=z.device)[None] < clen[:, None]
        q, codes, commit = self.rvq(z, mask=cmask)
        recon = self.decode_quantized(q, T, clen)
        mask = batch["mask"].unsqueeze(-1).to(recon.dtype)
        mse = ((recon - feats) ** 2 * mask).sum() / (mask.sum() * feats.shape[-1]).clamp_min(1)
        metrics = {"recon_mse": mse.detach()}
        valid = codes[cmask]                                     # (N, K)
        for k in range(self.num_codebooks):
            metrics[f"perplexity_{k}"] = perplexity(valid[:, k], self.codebook_size)
            metrics[f"usage_{k}"] = float(torch.unique(valid[:, k]).numel()) / self.codebook_size
        return {"losses": {"recon": mse, "commit": commit.sum()}, "metrics": metrics}

    # ------------------------------------------------------------------ tokenization
    @torch.no_grad()
    def codes(self, feats: torch.Tensor, lens: torch.Tensor) -> Tuple[torch.Tensor, torch.Tensor]:
        """``(B, T, D)`` -> codes ``(B, T', K)`` and code lengths ``(B,)`` (eval mode, no codebook update)."""
        z = self.encode_continuous(feats, lens)
        _, codes, _ = self.rvq(z, freeze_codebook=True)
        return codes, self.code_lengths(lens)

    def tokens(self, codes: torch.Tensor) -> torch.Tensor:
        """``(T', K)`` codes -> ``(T' * K,)`` flat tokens ``k * C + code_k`` (frame-major)."""
        offs = torch.arange(self.num_codebooks, device=codes.device) * self.codebook_size
        return (codes + offs).reshape(-1)

    def codes_of_tokens(self, tokens: torch.Tensor) -> torch.Tensor:
        """Inverse of :meth:`tokens`: ``(N,)`` -> ``(N // K, K)``; a token in the wrong codebook slot is an error."""
        K, C = self.num_codebooks, self.codebook_size
        n = (tokens.numel() // K) * K
        t = tokens[:n].reshape(-1, K)
        k = torch.arange(K, device=t.device)
        if ((t < k * C) | (t >= (k + 1) * C)).any():
            raise ValueError(f"token sequence does not follow the {K}-codebook layout (token k*{C}+code at slot k)")
        return t - k * C

    @torch.no_grad()
    def decode_tokens(self, tokens: torch.Tensor, num_frames: int = None) -> torch.Tensor:
        """Flat tokens ``(N,)`` -> reconstructed semantic features ``(T, D)``."""
        codes = self.codes_of_tokens(tokens)
        q = self.rvq.get_output_from_indices(codes[None])
        T = num_frames if num_frames is not None else codes.shape[0] * self.stride
        return self.decode_quantized(q, T)[0]
