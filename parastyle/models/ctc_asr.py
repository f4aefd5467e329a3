"""A small CTC speech recogniser over log-mel features: the toolkit's ASR judge and semantic encoder.

    x (B, T, F) -> Conv1d(F, H, 5, stride 2) -> GELU -> Conv1d(H, H, 3) -> GELU      (T' = floor((T-1)/2) + 1)
      -> encoder -> h (B, T', H)
         kind lstm: num_layers x BiLSTM(H/2 per direction), dropout between layers
         kind conv: num_layers x residual [x + Dropout(GELU(Conv1d_k(LayerNorm(x))))] (k = conv_kernel)
      -> Linear(H, V) -> log-softmax -> CTC (blank 0)

    loss = sum_b CTC(log p_b, y_b) / B

Units are characters (``data/lang/tokens.txt`` from ``parastyle.bin.make_tokens``; ``<space>`` is a
token) or sentencepiece pieces, through :mod:`parastyle.text.tokenizer`: a character outside the
vocabulary is an error naming the utterance. Padding never changes the output of a valid frame
(masked convolution inputs, packed LSTM sequences). ``encode(feats, mask) -> (h, mask')`` exposes the
hidden layer (``h`` zero on padded frames) for models that use the recogniser as a semantic encoder;
``predict`` decodes greedily (best path, repeats collapsed, blanks dropped).
"""
from __future__ import annotations

from typing import Any, Dict, List, Optional, Tuple

import torch
import torch.nn.functional as F
from torch import nn

from parastyle.fileio import DataError
from parastyle.metrics.asr import cer as char_error_rate
from parastyle.metrics.asr import ctc_greedy_decode
from parastyle.models import MODELS


def subsampled_lengths(lengths: torch.Tensor) -> torch.Tensor:
    """Frames after the stride-2 convolution (kernel 5, padding 2): ``floor((T - 1) / 2) + 1``."""
    return torch.div(lengths - 1, 2, rounding_mode="floor") + 1


@MODELS.register("ctc_asr")
class CTCASR(nn.Module):
    """See the module docstring.

    Args:
        input_dim: F.
        tokenizer: ``encode(text, utt) -> ids``, ``decode(ids) -> str``, ``len()`` tokens, blank 0.
        hidden: H (even).
        num_layers: encoder layers.
        dropout: dropout on the conv output and between encoder layers.
        kind: ``lstm`` (BiLSTM) or ``conv`` (residual 1-D convolutions; several times faster on CPU).
        conv_kernel: kernel of the ``conv`` encoder layers.
    """

    def __init__(self, input_dim: int, tokenizer, hidden: int = 256, num_layers: int = 3, dropout: float = 0.1,
                 kind: str = "lstm", conv_kernel: int = 5):
        super().__init__()
        if kind not in ("lstm", "conv"):
            raise ValueError(f"ctc_asr: kind must be lstm or conv, got {kind!r}")
        if hidden % 2:
            raise ValueError(f"ctc_asr: hidden must be even (two LSTM directions), got {hidden}")
        if conv_kernel % 2 == 0:
            raise ValueError(f"ctc_asr: conv_kernel must be odd, got {conv_kernel}")
        self.kind = kind
        self.tokenizer = tokenizer
        self.conv1 = nn.Conv1d(input_dim, hidden, 5, stride=2, padding=2)
        self.conv2 = nn.Conv1d(hidden, hidden, 3, padding=1)
        self.dropout = nn.Dropout(dropout)
        if kind == "lstm":
            self.lstm = nn.LSTM(hidden, hidden // 2, num_layers=num_layers, batch_first=True, bidirectional=True,
                                dropout=dropout if num_layers > 1 else 0.0)
        else:
            self.norms = nn.ModuleList([nn.LayerNorm(hidden) for _ in range(num_layers)])
            self.convs = nn.ModuleList([nn.Conv1d(hidden, hidden, conv_kernel, padding=conv_kernel // 2)
                                        for _ in range(num_layers)])
        self.output = nn.Linear(hidden, len(tokenizer))
        self.output_dim = hidden
        self.frame_subsampling = 2

    @classmethod
    def from_config(cls, conf: Dict[str, Any], task) -> "CTCASR":
        """``conf = {"token_list": data/lang/tokens.txt, "token_type": char|bpe, "bpemodel": ..., hidden, ...}``."""
        from parastyle.text import tokenizer_from_model_conf
        conf = dict(conf)
        tokenizer = tokenizer_from_model_conf(conf, task, "ctc_asr")
        return cls(task.feat_dim, tokenizer, **conf)

    # ------------------------------------------------------------------ encoder
    def encode(self, feats: torch.Tensor, mask: torch.Tensor) -> Tuple[torch.Tensor, torch.Tensor]:
        """``feats (B, T, F)``, ``mask (B, T)`` -> ``h (B, T', H)`` (0 on padding), ``mask' (B, T')``."""
        lens = mask.long().sum(1)
        if bool((lens < 1).any()):
            raise ValueError("ctc_asr.encode: an utterance has no valid frame")
        x = (feats * mask.unsqueeze(-1).to(feats.dtype)).transpose(1, 2)
        x = F.gelu(self.conv1(x))
        sub = subsampled_lengths(lens)
        m = (torch.arange(x.shape[-1], device=x.device)[None, :] < sub[:, None])
        x = x * m.unsqueeze(1).to(x.dtype)
        x = F.gelu(self.conv2(x)) * m.unsqueeze(1).to(x.dtype)
        x = self.dropout(x.transpose(1, 2))
        if self.kind == "conv":
            mf = m.unsqueeze(-1).to(x.dtype)
            for norm, conv in zip(self.norms, self.convs):
                y = conv((norm(x) * mf).transpose(1, 2)).transpose(1, 2)
                x = (x + self.dropout(F.gelu(y))) * mf
            return x, m
        packed = nn.utils.rnn.pack_padded_sequence(x, sub.cpu(), batch_first=True, enforce_sorted=False)
        h, _ = self.lstm(packed)
        h, _ = nn.utils.rnn.pad_packed_sequence(h, batch_first=True, total_length=x.shape[1])
        return h, m

    def log_probs(self, batch: Dict[str, Any]) -> Tuple[torch.Tensor, torch.Tensor]:
        """``(log_probs (B, T', V), lengths (B,))``."""
        h, m = self.encode(batch["feats"], batch["mask"])
        return self.output(self.dropout(h)).log_softmax(-1), m.long().sum(1)

    def _targets(self, batch: Dict[str, Any], in_lens: torch.Tensor):
        if "text" not in batch:
            raise DataError("ctc_asr needs transcripts: the data dir has no 'text' file (or some utterance has "
                            "no line in it)")
        seqs = [self.tokenizer.encode(t, u) for t, u in zip(batch["text"], batch["utt_ids"])]
        for seq, n, utt in zip(seqs, in_lens.tolist(), batch["utt_ids"]):
            need = len(seq) + sum(1 for a, b in zip(seq, seq[1:]) if a == b)
            if need > n:
                raise DataError(f"utterance {utt!r}: {len(seq)} tokens need at least {need} frames for CTC but "
                                f"the encoder gives {n} (utterance too short for its transcript)")
            if not seq:
                raise DataError(f"utterance {utt!r}: empty transcript")
        return seqs

    def forward(self, batch: Dict[str, Any]) -> Dict[str, Dict[str, Any]]:
        """Loss ``ctc`` (sum over the batch / B); in eval mode also metric ``cer`` (greedy decoding)."""
        logp, in_lens = self.log_probs(batch)
        seqs = self._targets(batch, in_lens)
        tgt_lens = torch.tensor([len(s) for s in seqs], dtype=torch.long, device=logp.device)
        flat = torch.tensor([i for s in seqs for i in s], dtype=torch.long, device=logp.device)
        ctc = F.ctc_loss(logp.transpose(0, 1).float(), flat, in_lens, tgt_lens, blank=0, reduction="sum",
                         zero_infinity=False) / logp.shape[0]
        metrics: Dict[str, Any] = {}
        if not self.training:
            hyps = [self.tokenizer.decode(s) for s in ctc_greedy_decode(logp.detach(), in_lens)]
            metrics["cer"] = char_error_rate([self.tokenizer.decode(s) for s in seqs], hyps)
        return {"losses": {"ctc": ctc}, "metrics": metrics}

    @torch.no_grad()
    def predict(self, batch: Dict[str, Any]) -> Dict[str, List]:
        """Greedy CTC: ``{"token_ids": list[list[int]], "text": list[str]}``."""
        logp, lens = self.log_probs(batch)
        ids = ctc_greedy_decode(logp, lens)
        return {"token_ids": ids, "text": [self.tokenizer.decode(s) for s in ids]}

    @torch.no_grad()
    def embed(self, batch: Dict[str, Any]) -> Dict[str, torch.Tensor]:
        """``{"hidden": (B, T', H), "mask": (B, T')}``."""
        h, m = self.encode(batch["feats"], batch["mask"])
        return {"hidden": h, "mask": m}
