"""Transcribe waveforms with a trained CTC ASR exp (model ``ctc_asr``): the ASR judge of TTS evaluation.

    from parastyle.evaluate.asr import ASRJudge, transcribe
    hyps = transcribe("exp/judge_asr", "data/test")            # {utt: text}
    hyps = transcribe("exp/judge_asr", {"u1": "a.wav"})          # wav paths / wav.scp entries

Features are computed on the fly with the exp's training front-end (``data.frontend``, or the
training data dir's ``feats_conf.yaml`` for an exp trained on pre-extracted features) and its CMVN
(:func:`parastyle.evaluate.best_of_n.on_the_fly_config`), so a synthesis directory needs no feature
extraction. Audio at another sample rate than the front-end's is refused (a TTS output at the wrong
rate is a bug to report, not to resample silently).
"""
from __future__ import annotations

import tempfile
from pathlib import Path
from typing import Dict, Mapping, Optional, Union

import torch

from parastyle.data.collate import move_batch
from parastyle.fileio import DataError, read_kv, write_kv
from parastyle.train.build import build_dataloader
from parastyle.train.checkpoint import load_model_from_exp
from parastyle.train.config import read_saved_config

WavTable = Mapping[str, str]


def check_exp_model(exp, expected: str, role: str) -> dict:
    """The saved config of ``exp``; DataError unless it trained model ``expected``."""
    exp = Path(exp)
    if not (exp / "config.yaml").is_file():
        raise DataError(f"{role} {exp}: not an exp dir ({exp}/config.yaml not found)")
    config = read_saved_config(exp / "config.yaml")
    name = config["model"]["name"]
    if name != expected:
        raise DataError(f"{role} {exp}: an exp of model {name!r}, expected a {expected!r} exp")
    return config


def check_sample_rates(table: WavTable, sample_rate: int, where: str) -> None:
    """DataError naming the first utterance whose file header is not at ``sample_rate`` Hz."""
    import soundfile as sf
    for utt, entry in table.items():
        entry = entry.strip()
        if entry.endswith("|") or ".ark:" in entry:
            continue
        try:
            info = sf.info(entry)
        except RuntimeError as e:
            raise DataError(f"{where}: utterance {utt!r}: cannot read {entry}: {e}") from None
        if int(info.samplerate) != int(sample_rate):
            raise DataError(f"{where}: utterance {utt!r}: {entry} is at {info.samplerate} Hz, the judge's front-end "
                            f"expects {sample_rate} Hz")


def wav_table(wavs: Union[str, Path, WavTable]) -> Dict[str, str]:
    """``{utt: wav.scp entry}`` from a data dir, a wav.scp file or a mapping."""
    if isinstance(wavs, Mapping):
        return dict(wavs)
    p = Path(wavs)
    scp = p / "wav.scp" if p.is_dir() else p
    if not scp.is_file():
        raise DataError(f"{scp}: file not found")
    table = read_kv(scp)
    if not table:
        raise DataError(f"{scp}: no utterance")
    return table


class ExpOnWavs:
    """A loaded exp applied to waveforms with its training front-end (base of the judges)."""

    model_name = ""
    role = "exp"

    def __init__(self, exp, checkpoint: Optional[str] = None, device: str = "cpu"):
        from parastyle.evaluate.best_of_n import on_the_fly_config
        self.exp = Path(exp)
        check_exp_model(self.exp, self.model_name, self.role)
        self.device = device
        self.model, config, self.task = load_model_from_exp(self.exp, checkpoint, map_location=device)
        self.model.to(device).eval()
        self.config = on_the_fly_config(config)
        self.sample_rate = int(self.config["data"]["frontend"].get("sample_rate", self.task.sample_rate))
        self.train_data = (config.get("_run") or {}).get("train_data")

    def _batches(self, table: Dict[str, str]):
        check_sample_rates(table, self.sample_rate, f"{self.role} {self.exp}")
        with tempfile.TemporaryDirectory(prefix="judge.") as tmp:
            write_kv(Path(tmp) / "wav.scp", table)
            write_kv(Path(tmp) / "utt2spk", {k: k for k in table})
            loader = build_dataloader(self.config, tmp, task=self.task, train=False)
            with torch.no_grad():
                for batch in loader:
                    yield move_batch(batch, self.device)


class ASRJudge(ExpOnWavs):
    model_name = "ctc_asr"
    role = "ASR judge"

    def transcribe(self, wavs: Union[str, Path, WavTable]) -> Dict[str, str]:
        table = wav_table(wavs)
        out: Dict[str, str] = {}
        for batch in self._batches(table):
            for u, t in zip(batch["utt_ids"], self.model.predict(batch)["text"]):
                out[u] = t
        return out


def transcribe(exp_dir, wavs: Union[str, Path, WavTable], checkpoint: Optional[str] = None,
               device: str = "cpu") -> Dict[str, str]:
    """``{utt: greedy CTC transcript}`` of a data dir / wav.scp / ``{utt: wav}`` by the ``ctc_asr`` exp."""
    return ASRJudge(exp_dir, checkpoint, device).transcribe(wavs)
