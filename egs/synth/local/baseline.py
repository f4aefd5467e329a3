#!/usr/bin/env python3
"""Hand-crafted-feature + SVM baseline for the synthetic corpus, speaker-independent.

Features per utterance (74 values):
  F0 (frame autocorrelation, 60–500 Hz, voiced frames only): mean, std, 10/50/90th percentile
  of log-F0, voiced fraction;
  energy (frame RMS in dB): mean, std, 10/90th percentile;
  duration (s) and voiced-segment rate (voicing onsets per second, a speaking-rate proxy);
  spectral centroid mean/std; 20 MFCCs (torchaudio Kaldi-compatible) mean and std and
  delta-MFCC std (20), over active frames (c0 within 40 dB of its maximum).
Classifier: standardisation + RBF SVM (sklearn ``SVC``, C=10, ``class_weight="balanced"``).
Split: speaker-grouped ``--num_folds``-fold cross-validation (default 5): the speakers are
dealt into disjoint folds, stratified by language, age and gender; each fold's speakers are
unseen by the SVM trained on the others.
Metric: UAR (balanced accuracy) per factor, mean and std over the folds.

Usage::

    python egs/synth/local/baseline.py --data data/all [--num_folds 5 --seed 0 --json out.json]
"""
from __future__ import annotations

import argparse
import json
import platform
import sys
import time
from pathlib import Path

import numpy as np
import soundfile as sf
import torch
import torchaudio
from sklearn.metrics import balanced_accuracy_score
from sklearn.pipeline import make_pipeline
from sklearn.preprocessing import StandardScaler
from sklearn.svm import SVC

from parastyle.fileio import DataError, read_kv

FACTORS = ("emotion", "gender", "age", "language")
FRAME = 1024
HOP = 256


def frame_signal(x: torch.Tensor, frame: int = FRAME, hop: int = HOP) -> torch.Tensor:
    """``(S,) -> (T, frame)`` frames (zero-padded at the end to at least one frame)."""
    if x.numel() < frame:
        x = torch.nn.functional.pad(x, (0, frame - x.numel()))
    return x.unfold(0, frame, hop)


def autocorr_f0(x: torch.Tensor, sr: int, fmin: float = 60.0, fmax: float = 500.0,
                threshold: float = 0.45) -> tuple:
    """Frame-wise F0 by autocorrelation (1024-sample frames, hop 256).

    Args: x ``(S,)`` float waveform. Returns ``(f0 (T,), voiced (T,) bool, rms (T,))``; the period
    is the lag of the autocorrelation maximum within ``[sr/fmax, sr/fmin]``; a frame is voiced
    when that maximum exceeds ``threshold`` times the zero-lag value and its RMS is above 1 % of
    the utterance's 95th-percentile frame RMS.
    """
    frames = frame_signal(x)
    frames = frames - frames.mean(dim=1, keepdim=True)
    rms = frames.pow(2).mean(dim=1).sqrt()
    spec = torch.fft.rfft(frames, n=2 * frames.shape[1])
    ac = torch.fft.irfft(spec.abs() ** 2)[:, : frames.shape[1]]
    lo, hi = int(sr / fmax), int(sr / fmin)
    peak, lag = ac[:, lo:hi].max(dim=1)
    lag = lag + lo
    strength = peak / ac[:, 0].clamp_min(1e-12)
    voiced = (strength > threshold) & (rms > 0.01 * torch.quantile(rms, 0.95))
    return sr / lag.to(x.dtype), voiced, rms


def utterance_features(x: np.ndarray, sr: int) -> np.ndarray:
    """Feature vector (74,) of one waveform ``(S,)``."""
    xt = torch.from_numpy(x.astype(np.float32))
    f0, voiced, rms = autocorr_f0(xt, sr)
    lf0 = torch.log(f0[voiced]) if voiced.any() else torch.zeros(1)
    q = torch.quantile(lf0, torch.tensor([0.1, 0.5, 0.9]))
    db = 20 * torch.log10(rms.clamp_min(1e-5))
    active = db[db > db.max() - 40]
    eq = torch.quantile(active, torch.tensor([0.1, 0.9]))
    dur = x.shape[0] / sr
    onsets = ((voiced[1:].int() - voiced[:-1].int()) == 1).sum().item()
    spec = torch.stft(xt, FRAME, HOP, window=torch.hann_window(FRAME), return_complex=True).abs()
    freqs = torch.linspace(0, sr / 2, spec.shape[0]).unsqueeze(1)
    centroid = (spec * freqs).sum(0) / spec.sum(0).clamp_min(1e-8)
    mfcc = torchaudio.compliance.kaldi.mfcc(xt.unsqueeze(0) * 32768, sample_frequency=sr,
                                            num_ceps=20, num_mel_bins=40, dither=0.0)
    # Statistics over active frames only (log energy, c0, within 40 dB = 9.2 nats of the
    # maximum): digital silence would otherwise add the energy floor to every mean and std.
    delta = (mfcc[1:] - mfcc[:-1])[(mfcc[1:, 0] > mfcc[:, 0].max() - 9.2)]
    mfcc = mfcc[mfcc[:, 0] > mfcc[:, 0].max() - 9.2]
    feats = [lf0.mean(), lf0.std() if lf0.numel() > 1 else torch.tensor(0.0), *q,
             voiced.float().mean(), active.mean(), active.std(), *eq,
             torch.tensor(dur), torch.tensor(onsets / dur),
             centroid.mean() / 1000, centroid.std() / 1000]
    vec = torch.cat([torch.stack([torch.as_tensor(f, dtype=torch.float32) for f in feats]),
                     mfcc.mean(0), mfcc.std(0), delta.std(0)])
    return vec.numpy().astype(np.float64)


def load_features(data: Path) -> tuple:
    """Features ``(N, 74)``, utterance ids, speakers and factor labels of a data dir."""
    wav = read_kv(data / "wav.scp", check_sorted=True)
    utt2spk = read_kv(data / "utt2spk", check_sorted=True)
    labels = {f: read_kv(data / f"utt2{f}", check_sorted=True) for f in FACTORS}
    utts = list(wav)
    feats = []
    for u in utts:
        x, sr = sf.read(wav[u], dtype="float32")
        if x.ndim != 1:
            raise DataError(f"{data}/wav.scp: utterance {u}: expected mono audio, got shape {x.shape}")
        feats.append(utterance_features(x, sr))
    for f, d in labels.items():
        missing = [u for u in utts if u not in d]
        if missing:
            raise DataError(f"{data}/utt2{f}: no label for utterance {missing[0]} ({len(missing)} missing)")
    return (np.stack(feats), utts, [utt2spk[u] for u in utts],
            {f: [labels[f][u] for u in utts] for f in FACTORS})


def speaker_folds(speakers: list, strata: list, num_folds: int, seed: int) -> list:
    """Test masks ``(N,)`` bool, one per fold, holding out disjoint groups of speakers.

    ``strata[i]`` is a hashable description of utterance ``i``'s speaker (e.g. its gender, age
    and language). Speakers are sorted by stratum (random order within a stratum, seeded) and
    dealt round-robin into ``num_folds`` folds, so every fold sees each factor value about
    equally often and each fold's speakers are unseen by the model trained on the others.
    """
    first = {}
    for s, st in zip(speakers, strata):
        first.setdefault(s, st)
    spks = sorted(first)
    if len(spks) < num_folds:
        raise DataError(f"only {len(spks)} speakers; need at least {num_folds} for {num_folds} folds")
    tiebreak = np.random.default_rng(seed).permutation(len(spks))
    order = sorted(range(len(spks)), key=lambda i: (first[spks[i]], tiebreak[i]))
    fold_of = {spks[i]: k % num_folds for k, i in enumerate(order)}
    folds = np.array([fold_of[s] for s in speakers])
    return [folds == k for k in range(num_folds)]


def run_baseline(data: Path, num_folds: int = 5, seed: int = 0) -> dict:
    """Speaker-grouped cross-validation: per fold and factor, train an SVM on the other folds'
    speakers and score UAR on this fold's unseen speakers; report mean and std over folds."""
    t0 = time.time()
    X, utts, speakers, labels = load_features(data)
    strata = list(zip(labels["language"], labels["age"], labels["gender"]))
    folds = speaker_folds(speakers, strata, num_folds, seed)
    per_fold = {f: [] for f in FACTORS}
    for test in folds:
        train = ~test
        for f in FACTORS:
            y = np.array(labels[f])
            clf = make_pipeline(StandardScaler(), SVC(C=10.0, kernel="rbf", class_weight="balanced"))
            clf.fit(X[train], y[train])
            per_fold[f].append(float(balanced_accuracy_score(y[test], clf.predict(X[test]))))
    n_spk = len(set(speakers))
    return {
        "uar_mean": {f: round(float(np.mean(v)), 4) for f, v in per_fold.items()},
        "uar_std": {f: round(float(np.std(v)), 4) for f, v in per_fold.items()},
        "chance": {f: round(1.0 / len(set(labels[f])), 4) for f in FACTORS},
        "num_folds": num_folds, "num_utts": len(utts), "num_speakers": n_spk,
        "n_test_per_fold": [int(t.sum()) for t in folds],
        "n_train_per_fold": [int((~t).sum()) for t in folds],
        "date": time.strftime("%Y-%m-%d", time.gmtime()),
        "machine": f"{platform.machine()}, {platform.python_implementation()} {platform.python_version()}, "
                   f"torch {torch.__version__}, {torch.get_num_threads()} thread(s)",
        "seconds": round(time.time() - t0, 1),
    }


def main(argv=None) -> int:
    p = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    p.add_argument("--data", required=True, type=Path, help="Kaldi data dir from make_synth_corpus")
    p.add_argument("--num_folds", type=int, default=5, help="speaker-grouped folds (default 5)")
    p.add_argument("--seed", type=int, default=0)
    p.add_argument("--json", type=Path, default=None, help="also write the results here")
    args = p.parse_args(argv)
    res = run_baseline(args.data, args.num_folds, args.seed)
    text = json.dumps(res, indent=1)
    print(text)
    if args.json:
        args.json.write_text(text + "\n")
    return 0


if __name__ == "__main__":
    sys.exit(main())
