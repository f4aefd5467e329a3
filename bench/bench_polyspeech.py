"""Benchmark the PolySpeech LM on CPU (or GPU): training tokens/s and generation tokens/s.

    tools/venv/bin/python bench/bench_polyspeech.py [--threads 2] [--size synth|paper] [--batch 16]
        [--seq 256] [--steps 5] [--gen 100] [--device cpu|cuda]

* ``synth``: the egs/synth/poly1 LM (d_model 192, 4 layers, 4 heads, d_ff 768);
  ``paper``: near the paper's ~160M model (d_model 1024, 12 layers, 16 heads, d_ff 4096; GPU).
  Vocabulary: 200 text units, 2048 speech tokens, 5 + 2 labels; 256-d continuous input.
* training: forward + backward + Adam step on ``batch`` sequences of ``seq`` positions (the first half
  continuous semantic frames, then text targets), median over ``--steps`` after two warm-up steps;
  tokens/s = batch * seq / step time (every position, padding-free).
* generation: TTS-style sampling of ``--gen`` speech tokens after a 40-token text prompt, with the KV
  cache and, for reference, by full recomputation at every step; tokens/s = generated / wall time.

Figures are printed, never asserted.
"""
from __future__ import annotations

import argparse
import platform
import statistics
import time

import torch

from parastyle.data.collate import IGNORE_INDEX
from parastyle.data.lm_dataset import SEP, PolyVocab
from parastyle.models.polyspeech import PolySpeechLM

SIZES = {"synth": dict(d_model=192, num_layers=4, num_heads=4, d_ff=768),
         "paper": dict(d_model=1024, num_layers=12, num_heads=16, d_ff=4096)}


class _Tok:
    def __len__(self):
        return 201

    def decode(self, ids):
        return ""


def main() -> None:
    p = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    p.add_argument("--threads", type=int, default=2)
    p.add_argument("--size", choices=sorted(SIZES), default="synth")
    p.add_argument("--batch", type=int, default=16)
    p.add_argument("--seq", type=int, default=256)
    p.add_argument("--steps", type=int, default=5)
    p.add_argument("--gen", type=int, default=100)
    p.add_argument("--device", default="cpu")
    a = p.parse_args()
    torch.set_num_threads(a.threads)
    torch.manual_seed(0)
    vocab = PolyVocab(201, 2048, {"lid": list("abcde"), "gid": ["f", "m"]})
    m = PolySpeechLM(vocab, 256, dropout=0.0, text_tokenizer=_Tok(), **SIZES[a.size]).to(a.device)
    n_params = sum(x.numel() for x in m.parameters())
    B, L, half = a.batch, a.seq, a.seq // 2
    ids = torch.randint(vocab.segments["text"][0], vocab.segments["text"][1], (B, L))
    ids[:, 0] = vocab.task_id("asr")
    ids[:, 1:half] = 0
    ids[:, half] = SEP
    cont = torch.randn(B, L, 256)
    cm = torch.zeros(B, L, dtype=torch.bool)
    cm[:, 1:half] = True
    tgt = torch.full((B, L), IGNORE_INDEX)
    tgt[:, half:-1] = ids[:, half + 1:]
    batch = {k: v.to(a.device) for k, v in dict(ids=ids, cont=cont, cont_mask=cm, targets=tgt).items()}
    batch["tasks"] = ["asr"] * B
    opt = torch.optim.Adam(m.parameters(), lr=1e-4)
    times = []
    for i in range(a.steps + 2):
        t0 = time.perf_counter()
        out = m(batch)
        loss = sum(out["losses"].values())
        opt.zero_grad()
        loss.backward()
        opt.step()
        if a.device.startswith("cuda"):
            torch.cuda.synchronize()
        if i >= 2:
            times.append(time.perf_counter() - t0)
    step = statistics.median(times)
    print(f"machine: {platform.processor() or platform.machine()}, torch {torch.__version__}, threads {a.threads}, "
          f"device {a.device}")
    print(f"LM {a.size}: {n_params / 1e6:.2f}M parameters")
    print(f"training: batch {B} x {L} positions: {step * 1000:.0f} ms/step, {B * L / step:,.0f} tokens/s")
    m.eval()
    prompt = torch.cat([torch.tensor([[vocab.task_id("tts")]]),
                        torch.randint(vocab.segments["text"][0], vocab.segments["text"][1], (1, 40)),
                        torch.tensor([[SEP]])], dim=1).to(a.device)
    # an untrained model rarely samples <eos>; the printed count is what was generated
    for use_cache in (True, False):
        g = torch.Generator().manual_seed(0)
        t0 = time.perf_counter()
        with torch.no_grad():
            toks = m.generate(prompt, "tts", max_len=a.gen, method="sample", top_k=50, generator=g,
                              use_cache=use_cache)
        dt = time.perf_counter() - t0
        print(f"generation ({'KV cache' if use_cache else 'full recomputation'}): {len(toks)} tokens in "
              f"{dt:.2f} s, {len(toks) / dt:.1f} tokens/s")


if __name__ == "__main__":
    main()
