"""PolySpeech (arXiv 2406.07801): one decoder-only Transformer LM for ASR, TTS, language ID and
gender ID over semantic speech representations.

A sequence is ``<task> input <sep> target <eos>`` (layout and union vocabulary in
:mod:`parastyle.data.lm_dataset`). Inputs are embedded by one table per vocabulary segment
(specials incl. the task IDs, text units, speech tokens, label tokens of each label task); the
continuous semantic embeddings of the speech input enter through a linear adapter. A causal
pre-LN Transformer (scaled-dot-product attention, rotary positions) is followed by one output
head over the union vocabulary. The loss is the cross-entropy on the target positions only,
per task (``loss_<task>``, token accuracy ``acc_<task>`` without ``<eos>``).

Inference: ASR greedy or beam search over text units (+ ``<eos>``), TTS top-k / temperature
sampling over speech tokens (+ ``<eos>``) with a length limit, LID / GID read off as the most
likely label token after ``<sep>``; generation uses a key/value cache.

Config (``model``)::

    name: polyspeech
    text_units: data/lang/text_units.model   # sentencepiece model (text units = its pieces)
    num_speech_tokens: 1024                 # SSET / k-means vocabulary (codebooks flattened)
    labels: {lid: language, gid: gender}    # factor of each label task (from data.factors)
    d_model: 256, num_layers: 4, num_heads: 4, d_ff: 1024, dropout: 0.1
"""
from __future__ import annotations

from typing import Dict, List, Optional, Sequence, Tuple

import torch
import torch.nn.functional as F
from torch import nn

from parastyle.data.collate import IGNORE_INDEX
from parastyle.data.lm_dataset import EOS, LABEL_TASKS, SEP, TASKS, PolyVocab, vocab_from_config
from parastyle.models import MODELS

KVCache = List[Tuple[torch.Tensor, torch.Tensor]]


def rotary(x: torch.Tensor, pos: torch.Tensor, base: float = 10000.0) -> torch.Tensor:
    """Rotary position embedding of ``x (B, H, T, Dh)`` at positions ``pos (T,)`` (rotate-half form)."""
    dh = x.shape[-1]
    inv = 1.0 / (base ** (torch.arange(0, dh, 2, device=x.device, dtype=torch.float32) / dh))
    ang = pos.to(torch.float32)[:, None] * inv[None, :]              # (T, Dh/2)
    cos, sin = ang.cos().repeat(1, 2).to(x.dtype), ang.sin().repeat(1, 2).to(x.dtype)
    x1, x2 = x[..., : dh // 2], x[..., dh // 2:]
    return x * cos + torch.cat([-x2, x1], dim=-1) * sin


class CausalSelfAttention(nn.Module):
    def __init__(self, d_model: int, num_heads: int, dropout: float):
        super().__init__()
        if d_model % num_heads or (d_model // num_heads) % 2:
            raise ValueError(f"d_model {d_model} must split into {num_heads} heads of even size")
        self.h, self.dh = num_heads, d_model // num_heads
        self.qkv = nn.Linear(d_model, 3 * d_model)
        self.out = nn.Linear(d_model, d_model)
        self.dropout = dropout

    def forward(self, x: torch.Tensor, start: int = 0,
                cache: Optional[Tuple[torch.Tensor, torch.Tensor]] = None):
        """``x (B, T, D)`` at positions ``start..start+T-1``; ``cache`` = keys/values of earlier positions."""
        B, T, D = x.shape
        q, k, v = self.qkv(x).view(B, T, 3, self.h, self.dh).permute(2, 0, 3, 1, 4)
        pos = torch.arange(start, start + T, device=x.device)
        q, k = rotary(q, pos), rotary(k, pos)
        if cache is not None:
            k = torch.cat([cache[0], k], dim=2)
            v = torch.cat([cache[1], v], dim=2)
        S = k.shape[2]
        if T == 1:
            mask = None                      # one new query sees every cached key
            causal = False
        elif S == T:
            mask, causal = None, True
        else:                                # a chunk after a cache: query i sees keys <= S - T + i
            mask = torch.ones(T, S, dtype=torch.bool, device=x.device).tril(S - T)
            causal = False
        y = F.scaled_dot_product_attention(q, k, v, attn_mask=mask, is_causal=causal,
                                           dropout_p=self.dropout if self.training else 0.0)
        return self.out(y.transpose(1, 2).reshape(B, T, D)), (k, v)


class Block(nn.Module):
    def __init__(self, d_model: int, num_heads: int, d_ff: int, dropout: float):
        super().__init__()
        self.ln1, self.ln2 = nn.LayerNorm(d_model), nn.LayerNorm(d_model)
        self.attn = CausalSelfAttention(d_model, num_heads, dropout)
        self.mlp = nn.Sequential(nn.Linear(d_model, d_ff), nn.GELU(), nn.Linear(d_ff, d_model))
        self.drop = nn.Dropout(dropout)

    def forward(self, x, start=0, cache=None):
        a, kv = self.attn(self.ln1(x), start, cache)
        x = x + self.drop(a)
        return x + self.drop(self.mlp(self.ln2(x))), kv


class SegmentEmbedding(nn.Module):
    """One embedding table per vocabulary segment; ``ids (B, T)`` union ids -> ``(B, T, D)``."""

    def __init__(self, vocab: PolyVocab, d_model: int):
        super().__init__()
        self.names = list(vocab.segments)
        self.ranges = [vocab.segments[n] for n in self.names]
        self.tables = nn.ModuleList(nn.Embedding(e - s, d_model) for s, e in self.ranges)
        for t in self.tables:
            nn.init.normal_(t.weight, std=0.02)

    def forward(self, ids: torch.Tensor) -> torch.Tensor:
        out = None
        for (s, e), table in zip(self.ranges, self.tables):
            inside = (ids >= s) & (ids < e)
            emb = table((ids - s).clamp(0, e - s - 1)) * inside.unsqueeze(-1)
            out = emb if out is None else out + emb
        return out


@MODELS.register("polyspeech")
class PolySpeechLM(nn.Module):
    def __init__(self, vocab: PolyVocab, feat_dim: int, d_model: int = 256, num_layers: int = 4,
                 num_heads: int = 4, d_ff: int = 1024, dropout: float = 0.1, text_tokenizer=None):
        super().__init__()
        self.vocab, self.text_tokenizer = vocab, text_tokenizer
        self.embed = SegmentEmbedding(vocab, d_model)
        self.adapter = nn.Linear(feat_dim, d_model)          # continuous semantic embeddings -> LM
        self.blocks = nn.ModuleList(Block(d_model, num_heads, d_ff, dropout) for _ in range(num_layers))
        self.ln_f = nn.LayerNorm(d_model)
        self.head = nn.Linear(d_model, vocab.size)
        self.drop = nn.Dropout(dropout)

    @classmethod
    def from_config(cls, conf: dict, task) -> "PolySpeechLM":
        conf = dict(conf)
        vocab, tok = vocab_from_config(conf, task.factors, lang_dir=task.lang_dir)
        for k in ("text_units", "num_speech_tokens", "labels"):
            conf.pop(k, None)
        return cls(vocab, int(task.feat_dim), text_tokenizer=tok, **conf)

    # ------------------------------------------------------------------ core
    def embed_inputs(self, ids: torch.Tensor, cont: Optional[torch.Tensor] = None,
                     cont_mask: Optional[torch.Tensor] = None) -> torch.Tensor:
        """``(B, T)`` union ids (+ continuous ``(B, T, F)`` where ``cont_mask``) -> ``(B, T, D)``."""
        if (ids < 0).any() or (ids >= self.vocab.size).any():
            bad = ids[(ids < 0) | (ids >= self.vocab.size)][0]
            raise ValueError(f"token id {int(bad)} out of the union vocabulary [0, {self.vocab.size})")
        x = self.embed(ids)
        if cont is not None and cont_mask is not None and bool(cont_mask.any()):
            x = torch.where(cont_mask.unsqueeze(-1), self.adapter(cont), x)
        return x

    def run(self, x: torch.Tensor, start: int = 0, cache: Optional[KVCache] = None):
        """Transformer over embeddings ``x (B, T, D)`` at positions ``start..``; returns ``(logits, cache)``."""
        x = self.drop(x)
        new_cache: KVCache = []
        for i, blk in enumerate(self.blocks):
            x, kv = blk(x, start, None if cache is None else cache[i])
            new_cache.append(kv)
        return self.head(self.ln_f(x)), new_cache

    def logits(self, batch) -> torch.Tensor:
        """``(B, L, V)`` next-token logits of a collated batch (right padding never reaches a valid position)."""
        x = self.embed_inputs(batch["ids"], batch.get("cont"), batch.get("cont_mask"))
        return self.run(x)[0]

    def forward(self, batch) -> Dict[str, Dict[str, torch.Tensor]]:
        logits = self.logits(batch)
        targets = batch["targets"]
        losses, metrics = {}, {}
        tasks = batch["tasks"]
        for t in sorted(set(tasks)):
            rows = torch.tensor([x == t for x in tasks], device=targets.device)
            tt = targets.masked_fill(~rows[:, None], IGNORE_INDEX)
            sel = tt != IGNORE_INDEX
            if not bool(sel.any()):
                continue
            losses[f"loss_{t}"] = F.cross_entropy(logits[sel], tt[sel])
            no_eos = sel & (tt != EOS)
            if bool(no_eos.any()):
                metrics[f"acc_{t}"] = (logits[no_eos].argmax(-1) == tt[no_eos]).float().mean().detach()
        return {"losses": losses, "metrics": metrics}

    # ------------------------------------------------------------------ inference
    def _allowed(self, task: str, with_eos: bool) -> torch.Tensor:
        s, e = self.vocab.output_range(task)
        m = torch.zeros(self.vocab.size, dtype=torch.bool)
        m[s:e] = True
        if with_eos:
            m[EOS] = True
        return m.to(self.head.weight.device)

    def _prompt(self, ids: torch.Tensor, cont: Optional[torch.Tensor], cont_mask: Optional[torch.Tensor]):
        """Run a ``(1, P)`` prompt (ending in ``<sep>``); returns ``(last logits (V,), cache)``."""
        x = self.embed_inputs(ids, cont, cont_mask)
        logits, cache = self.run(x)
        return logits[0, -1], cache

    def _step(self, token: torch.Tensor, pos: int, cache: KVCache):
        """One new token per row ``(N,)`` at position ``pos``; returns ``(logits (N, V), cache)``."""
        logits, cache = self.run(self.embed_inputs(token[:, None]), start=pos, cache=cache)
        return logits[:, -1], cache

    @torch.no_grad()
    def classify(self, batch) -> Dict[str, torch.Tensor]:
        """Label tasks: ``{task: (B,) predicted label index}`` read off after ``<sep>`` (-1 for other tasks)."""
        logits = self.logits(batch)
        pos = batch["prompt_lens"] - 1                     # the <sep> position predicts the label
        last = logits[torch.arange(logits.shape[0]), pos]
        out: Dict[str, torch.Tensor] = {}
        for t in LABEL_TASKS:
            if t not in self.vocab.labels:
                continue
            s, e = self.vocab.output_range(t)
            pred = last[:, s:e].argmax(-1)
            rows = torch.tensor([x == t for x in batch["tasks"]], device=pred.device)
            out[t] = torch.where(rows, pred, torch.full_like(pred, -1))
        return out

    @torch.no_grad()
    def generate(self, prompt_ids: torch.Tensor, task: str, cont: Optional[torch.Tensor] = None,
                 cont_mask: Optional[torch.Tensor] = None, max_len: int = 200, method: str = "greedy",
                 beam_size: int = 4, top_k: int = 0, temperature: float = 1.0,
                 generator: Optional[torch.Generator] = None, use_cache: bool = True) -> List[int]:
        """Generate the target of one prompt ``(1, P)`` (``<task> input <sep>``), stopping at ``<eos>`` or
        ``max_len`` tokens; returns union ids without ``<eos>``.

        ``method``: ``greedy`` | ``beam`` (``beam_size``; scores = summed log-probabilities, a finished
        hypothesis is compared by its score) | ``sample`` (``top_k`` (0 = all) and ``temperature``).
        ``use_cache`` False recomputes the whole sequence at every step (reference for the cache).
        """
        if task not in TASKS:
            raise ValueError(f"unknown task {task!r}; the tasks are {list(TASKS)}")
        if prompt_ids.dim() != 2 or prompt_ids.shape[0] != 1 or int(prompt_ids[0, -1]) != SEP:
            raise ValueError("generate takes one prompt (1, P) ending in <sep>")
        allowed = self._allowed(task, with_eos=True)
        if method == "beam":
            return self._beam(prompt_ids, allowed, cont, cont_mask, max_len, beam_size)
        out: List[int] = []
        logits, cache = self._prompt(prompt_ids, cont, cont_mask)
        seq = prompt_ids
        for _ in range(max_len):
            scores = logits.float().masked_fill(~allowed, float("-inf"))
            if method == "greedy":
                nxt = int(scores.argmax())
            elif method == "sample":
                scores = scores / max(float(temperature), 1e-6)
                if top_k and top_k < int(allowed.sum()):
                    kth = scores.topk(int(top_k)).values[-1]
                    scores = scores.masked_fill(scores < kth, float("-inf"))
                nxt = int(torch.multinomial(scores.softmax(-1), 1, generator=generator))
            else:
                raise ValueError(f"method must be greedy, beam or sample, got {method!r}")
            if nxt == EOS:
                break
            out.append(nxt)
            tok = torch.tensor([nxt], device=prompt_ids.device)
            if use_cache:
                logits, cache = self._step(tok, seq.shape[1], cache)
                logits = logits[0]
                seq = torch.cat([seq, tok[None]], dim=1)
            else:
                seq = torch.cat([seq, tok[None]], dim=1)
                cm = None if cont_mask is None else F.pad(cont_mask, (0, seq.shape[1] - cont_mask.shape[1]))
                cc = None if cont is None else F.pad(cont, (0, 0, 0, seq.shape[1] - cont.shape[1]))
                logits = self.logits({"ids": seq, "cont": cc, "cont_mask": cm})[0, -1]
        return out

    def _beam(self, prompt_ids, allowed, cont, cont_mask, max_len: int, beam_size: int) -> List[int]:
        logits, cache = self._prompt(prompt_ids, cont, cont_mask)
        P = prompt_ids.shape[1]
        beams: List[Tuple[float, List[int]]] = [(0.0, [])]
        finished: List[Tuple[float, List[int]]] = []
        logp = logits.float().masked_fill(~allowed, float("-inf")).log_softmax(-1)[None]   # (1, V)
        for step in range(max_len):
            cand = []
            for b, (score, hyp) in enumerate(beams):
                top = logp[b].topk(min(beam_size, int(allowed.sum())))
                for lp, tok in zip(top.values.tolist(), top.indices.tolist()):
                    cand.append((score + lp, hyp, tok, b))
            cand.sort(key=lambda c: -c[0])
            new_beams, src, toks = [], [], []
            for score, hyp, tok, b in cand:
                if tok == EOS:
                    finished.append((score, hyp))
                else:
                    new_beams.append((score, hyp + [tok]))
                    src.append(b)
                    toks.append(tok)
                if len(new_beams) == beam_size:
                    break
            best_done = max((f[0] for f in finished), default=float("-inf"))
            if not new_beams or best_done >= new_beams[0][0]:
                break
            idx = torch.tensor(src, device=prompt_ids.device)
            cache = [(k.index_select(0, idx) if k.shape[0] > 1 else k.expand(len(src), -1, -1, -1),
                      v.index_select(0, idx) if v.shape[0] > 1 else v.expand(len(src), -1, -1, -1))
                     for k, v in cache]
            step_logits, cache = self._step(torch.tensor(toks, device=prompt_ids.device), P + step, cache)
            logp = step_logits.float().masked_fill(~allowed, float("-inf")).log_softmax(-1)
            beams = new_beams
        else:                                    # max_len reached: the live hypotheses compete too
            finished.extend(beams)
        return max(finished, key=lambda f: f[0])[1]

    # ------------------------------------------------------------------ decoding helpers
    def text_of(self, ids: Sequence[int]) -> str:
        """Union text ids -> string (through the sentencepiece text units)."""
        s = self.vocab.segments["text"][0]
        return self.text_tokenizer.decode([int(i) - s for i in ids])

    def speech_of(self, ids: Sequence[int]) -> List[int]:
        """Union speech ids -> speech token indices."""
        s = self.vocab.segments["speech"][0]
        return [int(i) - s for i in ids]


def num_parameters(model: nn.Module) -> int:
    return sum(p.numel() for p in model.parameters())


__all__ = ["PolySpeechLM", "rotary", "num_parameters"]
