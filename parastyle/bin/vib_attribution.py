"""Frame attribution of a stage-2 VIB classifier: the attention weights of its two streams.

    python -m parastyle.bin.vib_attribution --exp exp/vib_stage2_emotion --data data/test \\
        [--out_dir <exp>/attribution_<set>] [--num_plots 8]

Writes ``<out_dir>/attention.json``: ``{utt: {"frame_shift_s", "label", "pred", "textual": [w_t],
"acoustic": [w_t]}}`` (weights over the valid latent frames, each summing to 1), and for the first
``--num_plots`` utterances ``<utt>.png``: the input spectrogram (the log-mel features, or for
waveform input a log-magnitude STFT) with both weight curves over time.
"""
from __future__ import annotations

import argparse
import json
import logging
import sys
from pathlib import Path

import numpy as np
import torch

from parastyle.data.collate import move_batch
from parastyle.fileio import DataError, atomic_write
from parastyle.train.build import build_dataloader
from parastyle.train.checkpoint import CheckpointError, load_model_from_exp


def _spectrogram(feats: torch.Tensor, sample_rate: int):
    """``(T, D)`` features -> ``(image (F, T'), seconds per column)``."""
    if feats.shape[1] == 1:        # waveform (S, 1): log-magnitude STFT, 25 ms window, 10 ms hop
        wav = feats[:, 0]
        n_fft, hop = int(0.025 * sample_rate), int(0.010 * sample_rate)
        spec = torch.stft(wav, n_fft=n_fft, hop_length=hop, window=torch.hann_window(n_fft), return_complex=True)
        return torch.log(spec.abs() + 1e-6).numpy(), hop / sample_rate
    return feats.T.numpy(), None


def plot_attribution(feats, frame_shift_in, w_t, w_a, frame_shift_z, title, path: Path, sample_rate: int) -> None:
    import matplotlib
    matplotlib.use("Agg")
    import matplotlib.pyplot as plt
    img, col_s = _spectrogram(feats, sample_rate)
    col_s = col_s or frame_shift_in
    fig, ax = plt.subplots(figsize=(8, 3.2))
    dur = img.shape[1] * col_s
    ax.imshow(img, origin="lower", aspect="auto", cmap="magma", extent=[0, dur, 0, img.shape[0]])
    ax.set_xlabel("time (s)")
    ax.set_ylabel("feature bin")
    ax2 = ax.twinx()
    t = (np.arange(len(w_t)) + 0.5) * frame_shift_z
    ax2.plot(t, w_t, color="cyan", label="textual stream")
    ax2.plot(t, w_a, color="lime", label="acoustic stream")
    ax2.set_ylabel("attention weight")
    ax2.set_ylim(0, max(float(np.max(w_t)), float(np.max(w_a))) * 1.1 + 1e-9)
    ax2.legend(loc="upper right", fontsize=7)
    ax.set_title(title, fontsize=9)
    fig.tight_layout()
    tmp = path.with_name("." + path.name + ".tmp.png")
    fig.savefig(tmp, dpi=100)
    plt.close(fig)
    tmp.replace(path)


def attribution(exp, data, out_dir=None, num_plots: int = 8, device="cpu") -> dict:
    exp, data = Path(exp), Path(data)
    model, config, task = load_model_from_exp(exp, map_location=device)
    if config["model"]["name"] != "vib_stage2":
        raise DataError(f"{exp}: attribution needs a vib_stage2 exp, got {config['model']['name']}")
    model.to(device)
    out_dir = Path(out_dir) if out_dir else exp / f"attribution_{data.name}"
    out_dir.mkdir(parents=True, exist_ok=True)
    loader = build_dataloader(config, data, task=task, train=False)
    result, plotted = {}, 0
    with torch.no_grad():
        for batch in loader:
            batch = move_batch(batch, device)
            att = model.attend(batch)
            labels = model.labels(batch).cpu().tolist()
            for i, utt in enumerate(batch["utt_ids"]):
                n = int(att["mask"][i].sum())
                w_t = att["w_textual"][i, :n].cpu().numpy()
                w_a = att["w_acoustic"][i, :n].cpu().numpy()
                lab = model.classes[labels[i]] if labels[i] >= 0 else None
                pred = model.classes[int(att["pred"][i])]
                result[utt] = {"frame_shift_s": model.frame_shift_s, "label": lab, "pred": pred,
                               "textual": [round(float(v), 6) for v in w_t],
                               "acoustic": [round(float(v), 6) for v in w_a]}
                if plotted < num_plots:
                    feats = batch["feats"][i, : int(batch["feat_lens"][i])].float().cpu()
                    plot_attribution(feats, task.frame_shift_s, w_t, w_a, model.frame_shift_s,
                                     f"{utt}  {model.target}: ref={lab} pred={pred}", out_dir / f"{utt}.png",
                                     task.sample_rate)
                    plotted += 1
    with atomic_write(out_dir / "attention.json") as fh:
        json.dump(result, fh)
        fh.write("\n")
    return result


def main(argv=None) -> int:
    p = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    p.add_argument("--exp", required=True)
    p.add_argument("--data", required=True)
    p.add_argument("--out_dir", default=None)
    p.add_argument("--num_plots", type=int, default=8)
    p.add_argument("--device", default="cpu")
    args = p.parse_args(argv)
    logging.basicConfig(level=logging.INFO, format="%(asctime)s %(levelname)s %(message)s")
    try:
        r = attribution(args.exp, args.data, args.out_dir, args.num_plots, args.device)
    except (DataError, CheckpointError) as e:
        print(f"error: {e}", file=sys.stderr)
        return 1
    print(f"attention weights of {len(r)} utterances written", file=sys.stderr)
    return 0


if __name__ == "__main__":
    sys.exit(main())
