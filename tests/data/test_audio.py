"""Audio loading of wav.scp entries: plain paths, pipes, wav arks, segments, resampling, bad input."""
from __future__ import annotations

import numpy as np
import pytest
import soundfile as sf
import torch

from parastyle.data.audio import load_audio
from parastyle.fileio import DataError


def _tone(n, rate=16000, freq=200.0):
    return (0.5 * np.sin(2 * np.pi * freq * np.arange(n) / rate)).astype(np.float32)


def test_plain_pipe_and_ark_entries_agree(tmp_path):
    import kaldiio
    x = _tone(8000)
    sf.write(tmp_path / "a.wav", x, 16000, subtype="PCM_16")
    plain = load_audio("u1", str(tmp_path / "a.wav"))
    assert plain.dtype == torch.float32 and plain.shape == (8000,)
    assert np.abs(plain.numpy() - x).max() < 1e-4                       # 16-bit quantisation only
    piped = load_audio("u1", f"cat {tmp_path / 'a.wav'} |")
    assert torch.equal(piped, plain)
    pcm = np.round(x * 32768).clip(-32768, 32767).astype(np.int16)
    kaldiio.save_ark(str(tmp_path / "wav.ark"), {"u1": (16000, pcm)}, scp=str(tmp_path / "wav_ark.scp"))
    entry = (tmp_path / "wav_ark.scp").read_text().split()[1]
    from_ark = load_audio("u1", entry)
    assert np.array_equal(from_ark.numpy(), pcm.astype(np.float32) / 32768)
    assert torch.allclose(from_ark, plain, atol=1e-4)


def test_stereo_is_averaged_and_resampled(tmp_path):
    left, right = _tone(16000, freq=300.0), np.zeros(16000, np.float32)
    sf.write(tmp_path / "s.wav", np.stack([left, right], 1), 16000, subtype="FLOAT")
    wav = load_audio("u", str(tmp_path / "s.wav"))
    assert np.allclose(wav.numpy(), left / 2, atol=1e-7)
    down = load_audio("u", str(tmp_path / "s.wav"), sample_rate=8000)
    assert down.shape == (8000,)
    # a 300 Hz tone keeps its frequency: the spectrum peaks at bin 300 of a 1 s, 8 kHz signal
    assert int(np.argmax(np.abs(np.fft.rfft(down.numpy())))) == 300


def test_segment_cut_before_resampling(tmp_path):
    x = np.arange(16000, dtype=np.float32) / 16000 - 0.5
    sf.write(tmp_path / "r.wav", x, 16000, subtype="FLOAT")
    seg = load_audio("u", str(tmp_path / "r.wav"), segment=(0.25, 0.5))
    assert np.allclose(seg.numpy(), x[4000:8000])
    with pytest.raises(DataError, match="starts after the end"):
        load_audio("u", str(tmp_path / "r.wav"), segment=(2.0, 3.0))


@pytest.mark.parametrize("case, pattern", [
    ("missing", "cannot read the audio file"),
    ("corrupt", "cannot read the audio file"),
    ("empty", "empty audio"),
    ("nan", "non-finite"),
    ("short", "too short"),
    ("pipe_fails", "exited with status 3"),
    ("pipe_garbage", "not a readable audio file"),
])
def test_bad_audio_names_utterance_and_entry(tmp_path, case, pattern):
    path = tmp_path / f"{case}.wav"
    entry = str(path)
    if case == "corrupt":
        path.write_bytes(b"RIFF\x00\x00garbage" * 10)
    elif case == "empty":
        sf.write(path, np.zeros(0, np.float32), 16000)
    elif case == "nan":
        x = _tone(1600)
        x[100] = np.nan
        sf.write(path, x, 16000, subtype="FLOAT")
    elif case == "short":
        sf.write(path, _tone(100), 16000)
    elif case == "pipe_fails":
        entry = "echo broken >&2; exit 3 |"
    elif case == "pipe_garbage":
        entry = "echo not-a-wav |"
    with pytest.raises(DataError) as e:
        load_audio("spk1-utt7", entry, min_samples=400, where="data/x/wav.scp:7")
    msg = str(e.value)
    assert "'spk1-utt7'" in msg and "data/x/wav.scp:7" in msg and entry in msg
    assert pattern in msg
