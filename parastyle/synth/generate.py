"""Plan, render and write the synthetic corpus.

Pipeline:

1. :func:`plan_corpus` draws speakers (speaker-bound gender, age group, language and identity),
   deals utterances to speakers (equal counts, +-1), deals emotions in speaker order from
   shuffled balanced decks of all emotions (exactly balanced overall, each speaker's emotions a
   run of the shuffled decks, so emotion is independent of speaker and of every speaker-bound
   factor up to sampling), deals sentences from a shuffled deck per language, and fixes every
   per-utterance setting
   (prosody jitter, caption template, noise seed). All randomness is drawn here, from
   ``seed``, so rendering order and ``nj`` never change the result.
2. :func:`render_utterance` runs espeak-ng (``-v <lang>+<variant> -p -s -a -m --stdout`` with
   the text inside SSML ``<prosody range=...>``), then post-processes the 22,050 Hz waveform:
   vocal-tract warp (polyphase resampling by the warp factor), tremolo, gain, optional
   white/pink noise at ``snr_db`` (relative to the mean power of the whole utterance), peak
   protection (scaling both speech and noise, so the SNR is kept), and writes a 16-bit PCM
   wav atomically (temporary name + rename).
3. :func:`write_data_dir` writes the Kaldi data dir, the label vocabularies and
   ``synth_meta.json`` (settings and pairwise Cramér's V between factors).
"""
from __future__ import annotations

import contextlib
import itertools
import json
import os
import shlex
import shutil
import subprocess
import tempfile
from concurrent.futures import FIRST_EXCEPTION, ThreadPoolExecutor, wait
from dataclasses import asdict, dataclass, field
from pathlib import Path
from typing import Dict, List, Optional, Sequence, Tuple
from xml.sax.saxutils import escape

import numpy as np
import soundfile as sf
from scipy.signal import resample_poly

from parastyle.fileio import DataError, atomic_write, default_file_mode, write_kv, write_list
from parastyle.synth.captions import make_caption, make_tags
from parastyle.synth.prosody import (AMPLITUDE_LIMITS, EMOTION_SETTINGS, JITTER_SD, PITCH_LIMITS,
                                     RANGE_LIMITS, RATE_LIMITS, UtteranceProsody, utterance_prosody)
from parastyle.synth.sentences import LANGUAGES, SENTENCES, check_languages
from parastyle.synth.stats import pairwise_cramers_v
from parastyle.synth.voices import (AGE_SETTINGS, BASE_PITCH, BASE_RATE_WPM, GENDER_VARIANTS,
                                    SPEAKER_SPREAD, Speaker, default_num_speakers, draw_speakers)

SAMPLE_RATE = 22050
ESPEAK = "espeak-ng"
INSTALL_HINT = "apt-get install espeak-ng"
#: Resolution of the warp factor: resampling by ``WARP_STEPS / round(WARP_STEPS * warp)``.
WARP_STEPS = 200
#: Peak level above which a rendered utterance is scaled down (speech and noise together).
PEAK_LIMIT = 0.98
NOISE_TYPES = ("white", "pink")
#: Kaldi table files written to the output directory, and the metadata file written last.
TABLE_FILES = ("wav.scp", "text", "utt2spk", "spk2utt", "utt2emotion", "utt2gender", "utt2age",
               "utt2language", "utt2caption", "utt2tags", "utt2dur")
META_FILE = "synth_meta.json"


class SynthError(RuntimeError):
    """espeak-ng is missing or failed; the message names the utterance and the command."""


@dataclass
class SynthConfig:
    """Generation settings (every CLI flag of ``make_synth_corpus`` except paths and ``nj``)."""

    num_utts: int = 400
    seed: int = 0
    languages: List[str] = field(default_factory=lambda: ["en", "cmn", "de", "fr", "es"])
    emotions: List[str] = field(default_factory=lambda: ["neutral", "happy", "sad", "angry", "surprise"])
    genders: List[str] = field(default_factory=lambda: ["female", "male"])
    ages: List[str] = field(default_factory=lambda: ["child", "adult", "senior"])
    num_speakers: Optional[int] = None
    utts_per_spk: int = 30
    jitter: float = 1.0
    overlap: float = 0.0
    speaker_spread: float = 1.0
    snr_db: Optional[float] = None
    noise_type: str = "pink"

    def validate(self) -> None:
        """Raise ValueError naming the first invalid setting."""
        if self.num_utts < 1:
            raise ValueError(f"num_utts must be >= 1, got {self.num_utts}")
        check_languages(self.languages)
        for name, values, known in (("emotions", self.emotions, EMOTION_SETTINGS),
                                    ("genders", self.genders, GENDER_VARIANTS),
                                    ("ages", self.ages, AGE_SETTINGS)):
            bad = [v for v in values if v not in known]
            if bad or not values or len(set(values)) != len(values):
                raise ValueError(f"{name}: invalid or repeated values {values}; known: {sorted(known)}")
        if self.num_speakers is not None and not 1 <= self.num_speakers <= self.num_utts:
            raise ValueError(f"num_speakers must be in [1, num_utts={self.num_utts}], got {self.num_speakers}")
        if self.utts_per_spk < 1:
            raise ValueError(f"utts_per_spk must be >= 1, got {self.utts_per_spk}")
        if self.jitter < 0 or self.speaker_spread < 0:
            raise ValueError("jitter and speaker_spread must be >= 0")
        if not 0.0 <= self.overlap <= 1.0:
            raise ValueError(f"overlap must be in [0, 1], got {self.overlap}")
        if self.noise_type not in NOISE_TYPES:
            raise ValueError(f"noise_type must be one of {NOISE_TYPES}, got {self.noise_type!r}")


@dataclass(frozen=True)
class UtterancePlan:
    """Everything needed to render and describe one utterance."""

    utt_id: str
    index: int
    speaker: Speaker
    emotion: str
    text: str
    caption: str
    tags: Tuple[str, ...]
    prosody: UtteranceProsody
    wav_path: str
    snr_db: Optional[float]
    noise_type: str
    seed: int


def _deal(deck_values: Sequence, count: int, rng: np.random.Generator) -> list:
    """``count`` items dealt from shuffled copies of ``deck_values`` (balanced within each round)."""
    out: list = []
    while len(out) < count:
        out.extend(deck_values[i] for i in rng.permutation(len(deck_values)))
    return out[:count]


def plan_corpus(config: SynthConfig, wav_dir: Path) -> Tuple[List[Speaker], List[UtterancePlan]]:
    """Draw speakers and per-utterance settings for ``config`` (see module docstring)."""
    config.validate()
    root = np.random.SeedSequence(config.seed)
    rng_spk, rng_alloc, rng_pros, rng_cap = (np.random.default_rng(s) for s in root.spawn(4))
    num_cells = len(config.genders) * len(config.ages) * len(config.languages)
    n_spk = config.num_speakers or min(config.num_utts,
                                       default_num_speakers(config.num_utts, num_cells, config.utts_per_spk))
    speakers = draw_speakers(n_spk, config.genders, config.ages, config.languages,
                             config.speaker_spread, rng_spk)

    per_spk = np.full(n_spk, config.num_utts // n_spk)
    per_spk[rng_alloc.permutation(n_spk)[: config.num_utts % n_spk]] += 1
    sentence_decks: Dict[str, List[int]] = {lang: [] for lang in config.languages}
    width = max(5, len(str(config.num_utts - 1)))
    plans: List[UtterancePlan] = []
    emotions = iter(_deal(config.emotions, config.num_utts, rng_alloc))
    for spk, count in zip(speakers, per_spk):
        for emotion in itertools.islice(emotions, int(count)):
            deck = sentence_decks[spk.language]
            if not deck:
                deck.extend(int(i) for i in rng_alloc.permutation(len(SENTENCES[spk.language])))
            text = SENTENCES[spk.language][deck.pop()]
            index = len(plans)
            utt_id = f"{spk.spk_id}-{index:0{width}d}"
            plans.append(UtterancePlan(
                utt_id=utt_id, index=index, speaker=spk, emotion=emotion, text=text,
                caption=make_caption(emotion, spk.gender, spk.age, spk.language, rng_cap),
                tags=tuple(make_tags(emotion, spk.gender, spk.age, spk.language)),
                prosody=utterance_prosody(spk, emotion, config.jitter, config.overlap, rng_pros),
                wav_path=str((wav_dir / f"{utt_id}.wav").resolve()),
                snr_db=config.snr_db, noise_type=config.noise_type,
                seed=config.seed,
            ))
    return speakers, plans


def check_espeak() -> str:
    """Path of the espeak-ng executable; SynthError with the install command if missing."""
    path = shutil.which(ESPEAK)
    if path is None:
        raise SynthError(f"{ESPEAK} not found on PATH; install it with: {INSTALL_HINT} "
                         f"(tools/setup.sh does this)")
    return path


def espeak_version() -> str:
    """First line of ``espeak-ng --version``."""
    out = subprocess.run([check_espeak(), "--version"], capture_output=True, text=True, check=True)
    return out.stdout.strip().splitlines()[0]


def espeak_command(plan: UtterancePlan, executable: str = ESPEAK) -> List[str]:
    """The espeak-ng command line of one utterance (SSML input on the command line)."""
    p = plan.prosody
    ssml = f'<speak><prosody range="{p.range_pct}%">{escape(plan.text)}</prosody></speak>'
    return [executable, "-m", "-v", p.voice, "-p", str(p.pitch), "-s", str(p.rate),
            "-a", str(p.amplitude), "--stdout", ssml]


def parse_espeak_wav(data: bytes) -> np.ndarray:
    """Samples ``(S,)`` float64 in [-1, 1] from espeak-ng's ``--stdout`` WAV stream.

    espeak-ng streams a 44-byte RIFF header whose size fields are placeholders; the 16-bit
    little-endian mono samples follow it.
    """
    if len(data) < 44 or data[:4] != b"RIFF" or data[8:12] != b"WAVE" or data[36:40] != b"data":
        raise ValueError("output is not a 44-byte-header WAV stream")
    channels = int.from_bytes(data[22:24], "little")
    rate = int.from_bytes(data[24:28], "little")
    bits = int.from_bytes(data[34:36], "little")
    if (channels, rate, bits) != (1, SAMPLE_RATE, 16):
        raise ValueError(f"expected mono 16-bit {SAMPLE_RATE} Hz, got {channels} ch {bits} bit {rate} Hz")
    body = data[44: 44 + (len(data) - 44) // 2 * 2]
    return np.frombuffer(body, dtype="<i2").astype(np.float64) / 32768.0


def make_noise(num_samples: int, noise_type: str, rng: np.random.Generator) -> np.ndarray:
    """Unit-power noise ``(S,)``: white (flat spectrum) or pink (power ~ 1/f, DC removed)."""
    white = rng.standard_normal(num_samples)
    if noise_type == "white":
        noise = white
    elif noise_type == "pink":
        spec = np.fft.rfft(white)
        freqs = np.fft.rfftfreq(num_samples)
        spec[0] = 0.0
        spec[1:] /= np.sqrt(freqs[1:])
        noise = np.fft.irfft(spec, n=num_samples)
    else:
        raise ValueError(f"unknown noise type {noise_type!r}; expected one of {NOISE_TYPES}")
    return noise / np.sqrt(np.mean(noise ** 2))


def postprocess(x: np.ndarray, plan: UtterancePlan) -> np.ndarray:
    """Warp, tremolo, gain, noise and peak protection of one rendered utterance ``(S,) -> (S',)``."""
    p = plan.prosody
    down = int(round(WARP_STEPS * p.warp))
    if down != WARP_STEPS:
        x = resample_poly(x, WARP_STEPS, down)
    if p.tremolo_depth > 0:
        t = np.arange(len(x)) / SAMPLE_RATE
        x = x * (1.0 + p.tremolo_depth * np.sin(2 * np.pi * p.tremolo_hz * t + p.tremolo_phase))
    x = x * 10.0 ** (p.gain_db / 20.0)
    if plan.snr_db is not None:
        power = float(np.mean(x ** 2))
        if power <= 0:
            raise ValueError("silent rendering; cannot add noise at an SNR")
        rng = np.random.default_rng([plan.seed, 104729, plan.index])
        noise = make_noise(len(x), plan.noise_type, rng)
        x = x + noise * np.sqrt(power / 10.0 ** (plan.snr_db / 10.0))
    peak = float(np.max(np.abs(x)))
    if peak > PEAK_LIMIT:
        x = x * (PEAK_LIMIT / peak)
    return x


def render_utterance(plan: UtterancePlan, executable: str = ESPEAK) -> int:
    """Render, post-process and atomically write one utterance; returns its number of samples.

    Raises SynthError naming the utterance and the exact command when espeak-ng fails or
    returns no audio.
    """
    cmd = espeak_command(plan, executable)
    try:
        proc = subprocess.run(cmd, capture_output=True, timeout=120)
    except (OSError, subprocess.TimeoutExpired) as e:
        raise SynthError(f"utterance {plan.utt_id}: espeak-ng failed ({e}); command: {shlex.join(cmd)}") from e
    if proc.returncode != 0:
        raise SynthError(f"utterance {plan.utt_id}: espeak-ng exited with status {proc.returncode} "
                         f"({proc.stderr.decode(errors='replace').strip()}); command: {shlex.join(cmd)}")
    try:
        x = parse_espeak_wav(proc.stdout)
        if len(x) < SAMPLE_RATE // 10:
            raise ValueError(f"only {len(x)} samples of audio")
        y = postprocess(x, plan)
    except ValueError as e:
        raise SynthError(f"utterance {plan.utt_id}: bad espeak-ng output: {e}; command: {shlex.join(cmd)}") from e
    path = Path(plan.wav_path)
    fd, tmp = tempfile.mkstemp(prefix=f".{path.stem}.", suffix=".wav", dir=path.parent)
    os.fchmod(fd, default_file_mode())      # mkstemp makes 0600; wavs are shared like any data file
    os.close(fd)
    try:
        sf.write(tmp, y.astype(np.float32), SAMPLE_RATE, subtype="PCM_16", format="WAV")
        os.replace(tmp, path)
    except BaseException:
        if os.path.exists(tmp):
            os.unlink(tmp)
        raise
    return len(y)


def render_all(plans: Sequence[UtterancePlan], nj: int = 1, progress: bool = True) -> Dict[str, int]:
    """Render every plan with ``nj`` concurrent espeak-ng processes; returns utt -> num samples.

    The first failure cancels the pending utterances and is re-raised.
    """
    from tqdm import tqdm

    if nj < 1:
        raise ValueError(f"nj must be >= 1, got {nj}")
    executable = check_espeak()
    for d in sorted({str(Path(p.wav_path).parent) for p in plans}):
        Path(d).mkdir(parents=True, exist_ok=True)
    samples: Dict[str, int] = {}
    with tqdm(total=len(plans), desc="synth", unit="utt", disable=not progress) as bar, \
            ThreadPoolExecutor(max_workers=nj) as pool:
        futures = {pool.submit(render_utterance, p, executable): p.utt_id for p in plans}
        pending = set(futures)
        while pending:
            done, pending = wait(pending, return_when=FIRST_EXCEPTION)
            for fut in done:
                if fut.exception() is not None:
                    for other in pending:
                        other.cancel()
                    raise fut.exception()
                samples[futures[fut]] = fut.result()
                bar.update(1)
    return samples


def settings_tables() -> dict:
    """All fixed class settings, for ``synth_meta.json`` and the documentation."""
    return {
        "base_pitch": BASE_PITCH, "base_rate_wpm": BASE_RATE_WPM,
        "gender_variants": GENDER_VARIANTS,
        "age": {k: asdict(v) for k, v in AGE_SETTINGS.items()},
        "emotion": {k: asdict(v) for k, v in EMOTION_SETTINGS.items()},
        "jitter_sd": asdict(JITTER_SD), "speaker_spread_sd": asdict(SPEAKER_SPREAD),
        "language": {k: v._asdict() for k, v in LANGUAGES.items()},
        "limits": {"pitch": PITCH_LIMITS, "range_pct": RANGE_LIMITS, "rate": RATE_LIMITS,
                   "amplitude": AMPLITUDE_LIMITS},
    }


def corpus_factors(plans: Sequence[UtterancePlan]) -> Dict[str, List[str]]:
    """Per-utterance values of every factor (plus speaker and sentence), in plan order."""
    return {
        "emotion": [p.emotion for p in plans],
        "gender": [p.speaker.gender for p in plans],
        "age": [p.speaker.age for p in plans],
        "language": [p.speaker.language for p in plans],
        "speaker": [p.speaker.spk_id for p in plans],
        "sentence": [p.text for p in plans],
    }


def write_data_dir(out: Path, lang_dir: Path, config: SynthConfig, speakers: Sequence[Speaker],
                   plans: Sequence[UtterancePlan], samples: Dict[str, int]) -> dict:
    """Write the Kaldi data dir, label vocabularies and ``synth_meta.json``; return the meta dict."""
    missing = [p.utt_id for p in plans if p.utt_id not in samples]
    if missing:
        raise DataError(f"{len(missing)} utterances were not rendered, e.g. {missing[:3]}")
    out.mkdir(parents=True, exist_ok=True)
    spk2utt: Dict[str, List[str]] = {}
    for p in sorted(plans, key=lambda p: p.utt_id.encode()):
        spk2utt.setdefault(p.speaker.spk_id, []).append(p.utt_id)
    tables = {
        "wav.scp": {p.utt_id: p.wav_path for p in plans},
        "text": {p.utt_id: p.text for p in plans},
        "utt2spk": {p.utt_id: p.speaker.spk_id for p in plans},
        "spk2utt": {s: " ".join(u) for s, u in spk2utt.items()},
        "utt2emotion": {p.utt_id: p.emotion for p in plans},
        "utt2gender": {p.utt_id: p.speaker.gender for p in plans},
        "utt2age": {p.utt_id: p.speaker.age for p in plans},
        "utt2language": {p.utt_id: p.speaker.language for p in plans},
        "utt2caption": {p.utt_id: p.caption for p in plans},
        "utt2tags": {p.utt_id: " ".join(p.tags) for p in plans},
        "utt2dur": {p.utt_id: f"{samples[p.utt_id] / SAMPLE_RATE:.3f}" for p in plans},
    }
    assert set(tables) == set(TABLE_FILES)
    # Stage every table in a temporary folder, then move them in (renames only).
    with tempfile.TemporaryDirectory(prefix=".synth_tables.", dir=out) as staging:
        for name, table in tables.items():
            write_kv(Path(staging) / name, table)
        for name in TABLE_FILES:
            os.replace(Path(staging) / name, out / name)
    for factor, values in (("emotion", config.emotions), ("gender", config.genders),
                           ("age", config.ages), ("language", config.languages)):
        write_list(lang_dir / f"{factor}.txt", values)

    factors = corpus_factors(plans)
    counts = {f: {v: factors[f].count(v) for v in sorted(set(factors[f]))}
              for f in ("emotion", "gender", "age", "language")}
    meta = {
        "config": asdict(config),
        "sample_rate": SAMPLE_RATE,
        "espeak_ng": espeak_version(),
        "num_utts": len(plans),
        "num_speakers": len(speakers),
        "total_hours": round(sum(samples.values()) / SAMPLE_RATE / 3600, 4),
        "counts": counts,
        "cramers_v": pairwise_cramers_v(factors),
        "settings": settings_tables(),
        "speakers": [s.to_dict() for s in speakers],
    }
    with atomic_write(out / META_FILE) as f:
        json.dump(meta, f, indent=1, ensure_ascii=False, sort_keys=False)
        f.write("\n")
    return meta


def remove_outputs(out: Path) -> None:
    """Delete the table files and ``synth_meta.json`` a previous run left in ``out``.

    Done before rendering, so a failed run never leaves old tables pointing at new audio.
    """
    for name in (*TABLE_FILES, META_FILE):
        with contextlib.suppress(FileNotFoundError):
            (Path(out) / name).unlink()


def make_corpus(config: SynthConfig, out: Path, lang_dir: Path, wav_dir: Optional[Path] = None,
                nj: int = 1, progress: bool = True) -> dict:
    """Plan, render and write a whole corpus; returns the meta dict (see ``synth_meta.json``).

    ``synth_meta.json`` is written last and marks a complete directory.
    """
    check_espeak()
    config.validate()
    out = Path(out)
    remove_outputs(out)
    wav_dir = Path(wav_dir) if wav_dir is not None else out / "wav"
    wav_dir.mkdir(parents=True, exist_ok=True)
    speakers, plans = plan_corpus(config, wav_dir)
    samples = render_all(plans, nj=nj, progress=progress)
    return write_data_dir(out, Path(lang_dir), config, speakers, plans, samples)
