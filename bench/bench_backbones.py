"""Benchmark the ParaMETA backbones: parameters, inference real-time factor, peak memory, training throughput.

    tools/venv/bin/python bench/bench_backbones.py [--device cpu|cuda] [--threads 1] [--backbones cnn,lstm,...]

For each backbone (default sizes of ``parastyle/nn/encoders``), the full ParaMETA model (encoder +
768-d META projection + 4 x 192-d subspace projections; the frozen text encoder and text projection
are left out, ``use_text: false``) is built for 80-bin log-mel input at 22,050 Hz with a hop of 256
samples (400 frames = 4.64 s of audio):

* parameters: full model (paper counts) and encoder alone;
* inference RTF: wall time of ``model.embed`` on one 400-frame utterance divided by its duration
  (median of repeated runs, after warm-up);
* peak memory of that inference: CPU = increase of the process's peak resident set size over the
  resident size before the call (``/proc/self/clear_refs`` resets the peak; the script re-executes
  itself with ``MALLOC_MMAP_THRESHOLD_=65536`` so that glibc returns freed tensor memory to the
  system and the peak of one call is visible); CUDA =
  ``torch.cuda.max_memory_allocated`` minus the memory held before the call;
* training throughput: utterances/s of forward + backward + Adam step at batch 32 x 400 frames.

Figures are printed as a Markdown table; timings are measured, never asserted.
"""
from __future__ import annotations

import argparse
import os
import platform
import statistics
import subprocess
import sys
import time
from pathlib import Path

import torch

from parastyle.models.parameta import ParaMETA

FACTORS = {"emotion": [f"e{i}" for i in range(7)], "age": [f"a{i}" for i in range(5)],
           "gender": ["female", "male"], "language": ["chinese", "english"]}
HOP_S = 256 / 22050


def _rss_kb(field: str) -> int:
    for line in Path("/proc/self/status").read_text().splitlines():
        if line.startswith(field + ":"):
            return int(line.split()[1])
    raise RuntimeError(f"{field} not in /proc/self/status")


def _sync(device):
    if device.type == "cuda":
        torch.cuda.synchronize()


def build(name: str, device) -> ParaMETA:
    return ParaMETA(feat_dim=80, factors=FACTORS, encoder={"name": name}, use_text=False).to(device)


def batch_of(B: int, T: int, device, seed: int = 0):
    g = torch.Generator().manual_seed(seed)
    labels = {f: torch.randint(0, len(v), (B,), generator=g).to(device) for f, v in FACTORS.items()}
    return {"feats": torch.randn(B, T, 80, generator=g).to(device),
            "mask": torch.ones(B, T, dtype=torch.bool, device=device), "labels": labels}


@torch.no_grad()
def inference(model, device, frames: int, repeats: int):
    model.eval()
    batch = batch_of(1, frames, device)
    for _ in range(3):
        model.embed(batch)
    _sync(device)
    times = []
    for _ in range(repeats):
        t0 = time.perf_counter()
        model.embed(batch)
        _sync(device)
        times.append(time.perf_counter() - t0)
    rtf = statistics.median(times) / (frames * HOP_S)
    if device.type == "cuda":
        torch.cuda.reset_peak_memory_stats()
        base = torch.cuda.memory_allocated()
        model.embed(batch)
        _sync(device)
        peak_mb = (torch.cuda.max_memory_allocated() - base) / 2**20
    else:
        Path("/proc/self/clear_refs").write_text("5")
        base = _rss_kb("VmRSS")
        model.embed(batch)
        peak_mb = max(0, _rss_kb("VmHWM") - base) / 1024
    return rtf, peak_mb


def train_throughput(model, device, batch_size: int, frames: int, steps: int):
    model.train()
    opt = torch.optim.Adam(model.parameters(), lr=1e-4)
    batches = [batch_of(batch_size, frames, device, seed=s) for s in range(steps + 1)]

    def step(b):
        out = model(b)
        opt.zero_grad(set_to_none=True)
        sum(out["losses"].values()).backward()
        opt.step()

    step(batches[0])                                           # warm-up
    _sync(device)
    t0 = time.perf_counter()
    for b in batches[1:]:
        step(b)
    _sync(device)
    return steps * batch_size / (time.perf_counter() - t0)


def main(argv=None) -> int:
    p = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    p.add_argument("--device", default="cuda" if torch.cuda.is_available() else "cpu")
    p.add_argument("--threads", type=int, default=None, help="torch CPU threads (default: torch's choice)")
    p.add_argument("--backbones", default="cnn,lstm,qformer,transformer")
    p.add_argument("--frames", type=int, default=400)
    p.add_argument("--batch_size", type=int, default=32)
    p.add_argument("--repeats", type=int, default=10)
    p.add_argument("--train_steps", type=int, default=2)
    p.add_argument("--row_only", action="store_true", help=argparse.SUPPRESS)
    args = p.parse_args(argv)
    if args.device == "cpu" and os.environ.get("MALLOC_MMAP_THRESHOLD_") != "65536":
        os.environ["MALLOC_MMAP_THRESHOLD_"] = "65536"
        os.execv(sys.executable, [sys.executable, os.path.abspath(__file__)] + (sys.argv[1:] if argv is None else argv))
    if args.threads:
        torch.set_num_threads(args.threads)
    device = torch.device(args.device)
    where = (torch.cuda.get_device_name(device) if device.type == "cuda"
             else f"{platform.processor() or platform.machine()}, {torch.get_num_threads()} torch thread(s)")
    names = args.backbones.split(",")
    if len(names) > 1:
        # One fresh process per backbone: memory peaks and allocator state never carry over.
        print(f"device: {device} ({where}); torch {torch.__version__}; input {args.frames} frames x 80 "
              f"({args.frames * HOP_S:.2f} s); training batch {args.batch_size}\n")
        print("| backbone | params (full model) | params (encoder) | inference RTF | peak inference memory (MB) "
              "| training utt/s |")
        print("|---|---|---|---|---|---|", flush=True)
        base = [a for a in (sys.argv[1:] if argv is None else list(argv))]
        for name in names:
            out = subprocess.run([sys.executable, os.path.abspath(__file__), *base, "--backbones", name, "--row_only"],
                                 check=True, capture_output=True, text=True).stdout
            print(out.strip(), flush=True)
        return 0
    if not args.row_only:
        print(f"device: {device} ({where}); torch {torch.__version__}; input {args.frames} frames x 80 "
              f"({args.frames * HOP_S:.2f} s); training batch {args.batch_size}\n")
        print("| backbone | params (full model) | params (encoder) | inference RTF | peak inference memory (MB) "
              "| training utt/s |")
        print("|---|---|---|---|---|---|")
    for name in names:
        torch.manual_seed(0)
        model = build(name, device)
        n_full = sum(p.numel() for p in model.parameters())
        n_enc = sum(p.numel() for p in model.encoder.parameters())
        rtf, mem = inference(model, device, args.frames, args.repeats)
        tput = train_throughput(model, device, args.batch_size, args.frames, args.train_steps)
        print(f"| {name} | {n_full / 1e6:.2f}M | {n_enc / 1e6:.2f}M | {rtf:.4f} | {mem:.1f} | {tput:.1f} |", flush=True)
        del model
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
