"""Semantic token decoder (PolySpeech's TTS back end): speech tokens + a speaker embedding -> log-mel.

    tokens (B, N) -> Embedding(V, H) + Linear(speaker embedding (B, E)) -> num_blocks x ConvBlock(k)
      -> repeat every step ``upsample`` times (tokens -> mel frames) -> num_blocks x ConvBlock(k)
      -> Linear(H, n_mels) -> mel (B, N * upsample, n_mels)

    loss = L1(mel_hat, mel) + MSE(mel_hat, mel) on the first min(T_mel, N * upsample) frames of
           every utterance (masked mean)

``upsample`` is the number of mel frames per token (e.g. SSET stride 2 over a CTC encoder with
frame subsampling 2 -> 4). The speaker embedding is the d-vector of a speech prompt (resemblyzer,
:class:`parastyle.metrics.tts.SpeakerEncoder`): in training the utterance's own, in synthesis
that of any prompt utterance (the timbre of that speaker). Each ConvBlock is
``x + Conv1d(GELU(LayerNorm(x)))``, zeroed on padded steps, so padding never changes a valid
output. Trained by the one trainer on the ``token_mel`` dataset (:mod:`parastyle.data.lm_dataset`).

Config (``model``)::

    name: token_decoder
    num_tokens: 256, upsample: 4, n_mels: 80, speaker_dim: 256
    hidden: 256, num_blocks: 3, kernel_size: 5, dropout: 0.1
"""
from __future__ import annotations

from typing import Dict, Optional

import torch
import torch.nn.functional as F
from torch import nn

from parastyle.models import MODELS


class ConvBlock(nn.Module):
    def __init__(self, ch: int, k: int, dropout: float):
        super().__init__()
        self.norm = nn.LayerNorm(ch)
        self.conv = nn.Conv1d(ch, ch, k, padding=k // 2)
        self.drop = nn.Dropout(dropout)

    def forward(self, x: torch.Tensor, m: torch.Tensor) -> torch.Tensor:
        """``x (B, T, C)``, ``m (B, T, 1)``."""
        y = self.conv(F.gelu(self.norm(x)).mul(m).transpose(1, 2)).transpose(1, 2)
        return (x + self.drop(y)) * m


@MODELS.register("token_decoder")
class TokenDecoder(nn.Module):
    def __init__(self, num_tokens: int, upsample: int = 4, n_mels: int = 80, speaker_dim: int = 256,
                 hidden: int = 256, num_blocks: int = 3, kernel_size: int = 5, dropout: float = 0.1):
        super().__init__()
        if upsample < 1:
            raise ValueError(f"upsample must be >= 1, got {upsample}")
        self.num_tokens, self.upsample, self.n_mels = int(num_tokens), int(upsample), int(n_mels)
        self.speaker_dim = int(speaker_dim)
        self.embed = nn.Embedding(self.num_tokens, hidden)
        self.spk = nn.Linear(self.speaker_dim, hidden)
        self.pre = nn.ModuleList(ConvBlock(hidden, kernel_size, dropout) for _ in range(num_blocks))
        self.post = nn.ModuleList(ConvBlock(hidden, kernel_size, dropout) for _ in range(num_blocks))
        self.out = nn.Linear(hidden, self.n_mels)

    @classmethod
    def from_config(cls, conf: dict, task) -> "TokenDecoder":
        return cls(**conf)           # task.feat_dim is the semantic feature dim, not the mel dim

    def decode(self, tokens: torch.Tensor, token_lens: torch.Tensor, spk: torch.Tensor) -> torch.Tensor:
        """``tokens (B, N)``, ``token_lens (B,)``, ``spk (B, E)`` -> mel ``(B, N * upsample, n_mels)`` (0 on padding)."""
        if (tokens < 0).any() or (tokens >= self.num_tokens).any():
            bad = tokens[(tokens < 0) | (tokens >= self.num_tokens)][0]
            raise ValueError(f"token id {int(bad)} out of range [0, {self.num_tokens}) of the token decoder")
        if spk.shape[-1] != self.speaker_dim:
            raise ValueError(f"speaker embedding of dim {spk.shape[-1]}, the decoder expects {self.speaker_dim}")
        N = tokens.shape[1]
        m = (torch.arange(N, device=tokens.device)[None] < token_lens[:, None]).unsqueeze(-1).float()
        x = (self.embed(tokens) + self.spk(spk).unsqueeze(1)) * m
        for blk in self.pre:
            x = blk(x, m)
        x = x.repeat_interleave(self.upsample, dim=1)
        m = m.repeat_interleave(self.upsample, dim=1)
        for blk in self.post:
            x = blk(x, m)
        return self.out(x) * m

    def forward(self, batch) -> Dict[str, Dict[str, torch.Tensor]]:
        mel_hat = self.decode(batch["tokens"], batch["token_lens"], batch["spk_emb"])
        mel, mel_lens = batch["mel"], batch["mel_lens"]
        T = min(mel.shape[1], mel_hat.shape[1])
        n = torch.minimum(mel_lens, batch["token_lens"] * self.upsample)
        m = (torch.arange(T, device=mel.device)[None] < n[:, None]).unsqueeze(-1).float()
        denom = (m.sum() * self.n_mels).clamp_min(1)
        diff = (mel_hat[:, :T] - mel[:, :T]) * m
        l1 = diff.abs().sum() / denom
        l2 = (diff ** 2).sum() / denom
        return {"losses": {"mel_l1": l1, "mel_l2": l2}, "metrics": {"mel_mae": l1.detach()}}

    @torch.no_grad()
    def synthesize(self, tokens, spk: torch.Tensor, num_frames: Optional[int] = None) -> torch.Tensor:
        """One utterance: ``tokens (N,)``, ``spk (E,)`` -> mel ``(T, n_mels)`` (``num_frames`` crops/pads)."""
        tokens = torch.as_tensor(tokens, dtype=torch.long, device=self.out.weight.device)
        if tokens.numel() == 0:
            raise ValueError("no token to decode")
        mel = self.decode(tokens[None], torch.tensor([tokens.numel()], device=tokens.device),
                          spk.to(self.out.weight.device).float()[None])[0]
        if num_frames is not None:
            mel = F.pad(mel, (0, 0, 0, max(0, num_frames - mel.shape[0])))[:num_frames]
        return mel
