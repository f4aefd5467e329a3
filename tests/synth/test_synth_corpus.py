"""Tests of the synthetic corpus generator (espeak-ng): determinism, Kaldi dir, factors, prosody, noise."""
from __future__ import annotations

import itertools
import json
import math
import os
import re
import stat
from pathlib import Path

import numpy as np
import pytest
import soundfile as sf

from parastyle.bin import make_synth_corpus
from parastyle.data.datadir import validate_data_dir
from parastyle.fileio import read_kv, read_list
from parastyle.synth import generate as G
from parastyle.synth.captions import CAPTION_WORDS
from parastyle.synth.prosody import utterance_prosody
from parastyle.synth.sentences import LANGUAGES, SENTENCES
from parastyle.synth.stats import cramers_v, pairwise_cramers_v
from parastyle.synth.voices import GENDER_VARIANTS, Speaker

FACTORS = ("emotion", "gender", "age", "language")
NUM_UTTS = 40  # size of the ``corpus`` fixture (tests/synth/conftest.py)
KALDI_FILES = ("wav.scp", "text", "utt2spk", "spk2utt", "utt2emotion", "utt2gender", "utt2age",
               "utt2language", "utt2caption", "utt2tags", "utt2dur")


@pytest.fixture(scope="module")
def corpus_again(tmp_path_factory, synth_cli):
    return synth_cli(tmp_path_factory.mktemp("synth_b"), seed=3)


# ---------------------------------------------------------------------------------------------
# Determinism and the Kaldi directory
# ---------------------------------------------------------------------------------------------

def test_same_seed_gives_identical_files_and_wavs(corpus, corpus_again, tmp_path):
    (a, la), (b, lb) = corpus, corpus_again
    for name in KALDI_FILES:
        ta = (a / name).read_text(encoding="utf-8")
        tb = (b / name).read_text(encoding="utf-8")
        if name == "wav.scp":  # absolute paths differ by the output root only
            ta, tb = ta.replace(str(a.resolve()), "ROOT"), tb.replace(str(b.resolve()), "ROOT")
        assert ta == tb, name
    assert (a / "synth_meta.json").read_bytes() == (b / "synth_meta.json").read_bytes()
    for f in FACTORS:
        assert (la / f"{f}.txt").read_bytes() == (lb / f"{f}.txt").read_bytes()
    wa, wb = read_kv(a / "wav.scp"), read_kv(b / "wav.scp")
    for utt in wa:
        assert Path(wa[utt]).read_bytes() == Path(wb[utt]).read_bytes(), utt
    # A different seed changes the corpus.
    _, plans3 = G.plan_corpus(G.SynthConfig(num_utts=NUM_UTTS, seed=3), tmp_path)
    _, plans4 = G.plan_corpus(G.SynthConfig(num_utts=NUM_UTTS, seed=4), tmp_path)
    assert [p.prosody for p in plans3] != [p.prosody for p in plans4]


def test_data_dir_is_complete_sorted_and_consistent(corpus):
    out, lang = corpus
    assert validate_data_dir(out, no_feats=True, lang_dir=lang) == []
    tables = {name: read_kv(out / name, check_sorted=True) for name in KALDI_FILES if name != "spk2utt"}
    utts = list(tables["utt2spk"])
    assert len(utts) == NUM_UTTS
    for name, table in tables.items():
        assert list(table) == utts, f"{name} does not cover exactly the utterances"
    spk2utt = read_kv(out / "spk2utt", check_sorted=True)
    assert {s: v.split() for s, v in spk2utt.items()} == {
        s: [u for u in utts if tables["utt2spk"][u] == s] for s in sorted(set(tables["utt2spk"].values()))}
    widths = {len(s) for s in spk2utt}
    assert len(widths) == 1, "speaker ids must have equal width"
    for u, s in tables["utt2spk"].items():
        assert re.fullmatch(rf"{re.escape(s)}-\d{{5}}", u), u
    # wavs are written through a temp file but get the umask's mode, like every data file (0644 under 022)
    umask = os.umask(0)
    os.umask(umask)
    for path in read_kv(out / "wav.scp").values():
        assert stat.S_IMODE(os.stat(path).st_mode) == 0o666 & ~umask, path
    # Audio: absolute paths, 22,050 Hz mono, duration as in utt2dur.
    for u, path in tables["wav.scp"].items():
        assert os.path.isabs(path) and Path(path).parent == (out / "wav").resolve()
        info = sf.info(path)
        assert (info.samplerate, info.channels) == (22050, 1)
        assert abs(info.frames / 22050 - float(tables["utt2dur"][u])) < 1e-3
        assert 1.0 < info.frames / 22050 < 9.0
    # Text is a sentence of the utterance's language.
    for u in utts:
        assert tables["text"][u] in SENTENCES[tables["utt2language"][u]]
    # Label vocabularies list every value.
    for f in FACTORS:
        vocab = read_list(lang / f"{f}.txt")
        assert set(tables[f"utt2{f}"].values()) <= set(vocab)
    assert read_list(lang / "emotion.txt") == ["neutral", "happy", "sad", "angry", "surprise"]
    assert read_list(lang / "age.txt") == ["child", "adult", "senior"]
    assert read_list(lang / "language.txt") == ["en", "cmn", "de", "fr", "es"]


def test_captions_and_tags_name_the_factor_values(corpus):
    out, _ = corpus
    labels = {f: read_kv(out / f"utt2{f}") for f in FACTORS}
    captions, tags = read_kv(out / "utt2caption"), read_kv(out / "utt2tags")
    templates_seen = set()
    for u, cap in captions.items():
        words = set(re.findall(r"[a-z][a-z-]*", cap.lower()))
        for f in FACTORS:
            value = labels[f][u]
            assert words & set(CAPTION_WORDS[f][value]), f"{u}: caption {cap!r} does not name {f}={value}"
            others = set().union(*(CAPTION_WORDS[f][v] for v in CAPTION_WORDS[f] if v != value))
            if f != "age":  # age words are shared with gender words (boy/girl), checked above
                assert not (words & others - set(CAPTION_WORDS[f][value])), f"{u}: {cap!r} names another {f}"
        assert tags[u].split() == [labels["emotion"][u], labels["gender"][u], labels["age"][u],
                                   LANGUAGES[labels["language"][u]].tag]
        templates_seen.add(re.sub(r"[a-z]", "", cap.lower()))
    assert len(set(captions.values())) > NUM_UTTS // 2, "captions should be paraphrased"
    assert len(templates_seen) >= 3, templates_seen


def test_speaker_bound_factors_are_constant_per_speaker(corpus):
    out, _ = corpus
    utt2spk = read_kv(out / "utt2spk")
    meta = json.loads((out / "synth_meta.json").read_text())
    by_id = {s["spk_id"]: s for s in meta["speakers"]}
    for f in ("gender", "age", "language"):
        lab = read_kv(out / f"utt2{f}")
        per_spk = {}
        for u, s in utt2spk.items():
            per_spk.setdefault(s, set()).add(lab[u])
        assert all(len(v) == 1 for v in per_spk.values()), f
        assert all(by_id[s][f] == next(iter(v)) for s, v in per_spk.items())
    for s in by_id.values():
        assert s["variant"] in GENDER_VARIANTS[s["gender"]]


def test_meta_reports_cramers_v_of_the_written_files(corpus, capsys):
    out, _ = corpus
    meta = json.loads((out / "synth_meta.json").read_text())
    utt2spk = read_kv(out / "utt2spk")
    factors = {f: list(read_kv(out / f"utt2{f}").values()) for f in FACTORS}
    factors["speaker"] = list(utt2spk.values())
    for (f1, f2) in itertools.combinations(factors, 2):
        assert meta["cramers_v"][f"{f1}~{f2}"] == pytest.approx(cramers_v(factors[f1], factors[f2]), abs=1e-4)
    assert meta["cramers_v"]["gender~speaker"] == 1.0
    assert meta["num_utts"] == NUM_UTTS and meta["config"]["seed"] == 3


# ---------------------------------------------------------------------------------------------
# Independence statistic
# ---------------------------------------------------------------------------------------------

def _cramers_v_brute_force(a, b):
    """chi2 by explicit loops over the value pairs, then V = sqrt(chi2 / (n (min(r, c) - 1)))."""
    n = len(a)
    va, vb = sorted(set(a)), sorted(set(b))
    chi2 = 0.0
    for x in va:
        for y in vb:
            observed = sum(1 for i in range(n) if a[i] == x and b[i] == y)
            expected = sum(1 for i in range(n) if a[i] == x) * sum(1 for i in range(n) if b[i] == y) / n
            chi2 += (observed - expected) ** 2 / expected
    return math.sqrt(chi2 / (n * (min(len(va), len(vb)) - 1)))


def test_cramers_v_matches_brute_force():
    rng = np.random.default_rng(0)
    for trial in range(20):
        n = int(rng.integers(5, 80))
        a = [f"a{x}" for x in rng.integers(0, rng.integers(2, 6), size=n)]
        b = [f"b{x}" for x in rng.integers(0, rng.integers(2, 7), size=n)]
        if len(set(a)) < 2 or len(set(b)) < 2:
            continue
        assert cramers_v(a, b) == pytest.approx(_cramers_v_brute_force(a, b), rel=1e-9, abs=1e-12)
    assert cramers_v(list("aabbcc"), list("xxyyzz")) == pytest.approx(1.0)
    assert cramers_v(list("aabb"), list("xyxy")) == pytest.approx(0.0)
    assert cramers_v(list("aaaa"), list("xyxy")) is None
    pw = pairwise_cramers_v({"p": list("aabb"), "q": list("xyxy"), "r": list("aabb")})
    assert pw == {"p~q": 0.0, "p~r": 1.0, "q~r": 0.0}


# ---------------------------------------------------------------------------------------------
# Design: classes, speakers, balance (planning only, no audio)
# ---------------------------------------------------------------------------------------------

def test_every_class_and_enough_speakers(tmp_path):
    speakers, plans = G.plan_corpus(G.SynthConfig(num_utts=2000, seed=1), tmp_path)
    assert len(plans) == 2000 and len({p.utt_id for p in plans}) == 2000
    assert len(speakers) >= 60
    cells = {}
    for s in speakers:
        cells[(s.gender, s.age, s.language)] = cells.get((s.gender, s.age, s.language), 0) + 1
    assert len(cells) == 2 * 3 * 5 and min(cells.values()) >= 2
    values = G.corpus_factors(plans)
    expected = {"emotion": 5, "gender": 2, "age": 3, "language": 5}
    for f, k in expected.items():
        counts = {v: values[f].count(v) for v in set(values[f])}
        assert len(counts) == k, f
        assert min(counts.values()) >= 0.6 * 2000 / k, (f, counts)
    emo_counts = [values["emotion"].count(e) for e in G.SynthConfig().emotions]
    assert max(emo_counts) - min(emo_counts) <= 1, emo_counts
    # Independence between emotion and the speaker-bound factors is near exact by design.
    for f in ("gender", "age", "language"):
        assert cramers_v(values["emotion"], values[f]) < 0.05
    # Moderate size: every class already present at 200 utterances.
    _, small = G.plan_corpus(G.SynthConfig(num_utts=200, seed=5), tmp_path)
    sv = G.corpus_factors(small)
    assert all(len(set(sv[f])) == k for f, k in expected.items())


def test_bad_settings_are_rejected(tmp_path, capsys):
    with pytest.raises(ValueError, match="unknown language"):
        G.plan_corpus(G.SynthConfig(num_utts=10, languages=["en", "xx"]), tmp_path)
    with pytest.raises(ValueError, match="overlap"):
        G.plan_corpus(G.SynthConfig(num_utts=10, overlap=1.5), tmp_path)
    rc = make_synth_corpus.main(["--out", str(tmp_path / "o"), "--lang_dir", str(tmp_path / "l"),
                                 "--num_utts", "10", "--emotions", "happy,bored"])
    assert rc == 1 and "bored" in capsys.readouterr().err
    assert not (tmp_path / "o" / "wav.scp").exists()


# ---------------------------------------------------------------------------------------------
# Rendering: emotion and age change the measured prosody; noise; errors
# ---------------------------------------------------------------------------------------------

def _median_f0_and_rms(x: np.ndarray, sr: int = 22050) -> tuple:
    """Median F0 over voiced frames (autocorrelation, 60–500 Hz) and RMS of the active frames."""
    frame, hop = 1024, 256
    frames = np.lib.stride_tricks.sliding_window_view(x, frame)[::hop]
    frames = frames - frames.mean(axis=1, keepdims=True)
    rms = np.sqrt((frames ** 2).mean(axis=1))
    spec = np.fft.rfft(frames, n=2 * frame)
    ac = np.fft.irfft(np.abs(spec) ** 2)[:, :frame]
    lo, hi = sr // 500, sr // 60
    lag = lo + ac[:, lo:hi].argmax(axis=1)
    strength = ac[np.arange(len(ac)), lag] / np.maximum(ac[:, 0], 1e-12)
    voiced = (strength > 0.5) & (rms > 0.05 * rms.max())
    return float(np.median(sr / lag[voiced])), float(np.sqrt(np.mean(rms[rms > 0.05 * rms.max()] ** 2)))


def _render(tmp_path, speaker, emotion, text_index, jitter=0.0, snr_db=None, noise_type="pink", tag=""):
    rng = np.random.default_rng(0)
    utt = f"{speaker.spk_id}-{emotion}{text_index}{tag}"
    plan = G.UtterancePlan(
        utt_id=utt, index=text_index, speaker=speaker, emotion=emotion,
        text=SENTENCES[speaker.language][text_index], caption="-", tags=(),
        prosody=utterance_prosody(speaker, emotion, jitter=jitter, overlap=0.0, rng=rng),
        wav_path=str(tmp_path / f"{utt}.wav"), snr_db=snr_db, noise_type=noise_type, seed=0)
    n = G.render_utterance(plan)
    x, sr = sf.read(plan.wav_path, dtype="float64")
    assert sr == 22050 and len(x) == n
    return x


def _speaker(age="adult", gender="female", language="en"):
    return Speaker(spk_id="spk000", gender=gender, age=age, language=language,
                   variant=GENDER_VARIANTS[gender][1], pitch_offset=0.0, rate_factor=1.0, warp=1.0, gain_db=0.0)


def test_emotion_settings_change_f0_energy_and_rate(tmp_path):
    spk = _speaker()
    m = {}
    for emo in ("neutral", "happy", "sad", "angry", "surprise"):
        xs = [_render(tmp_path, spk, emo, i) for i in (0, 3)]
        stats = [_median_f0_and_rms(x) for x in xs]
        m[emo] = {"f0": np.mean([s[0] for s in stats]), "rms": np.mean([s[1] for s in stats]),
                  "dur": np.mean([len(x) for x in xs]) / 22050}
    assert m["happy"]["f0"] > m["sad"]["f0"] * 1.1
    assert m["surprise"]["f0"] > m["neutral"]["f0"] > m["sad"]["f0"]
    assert m["angry"]["rms"] > m["sad"]["rms"] * 1.5
    assert m["angry"]["rms"] > m["neutral"]["rms"]
    assert m["sad"]["dur"] > m["neutral"]["dur"] > m["angry"]["dur"]


def test_age_settings_change_f0_and_rate(tmp_path):
    f0, dur = {}, {}
    for age in ("child", "adult", "senior"):
        x = _render(tmp_path, _speaker(age=age, gender="male"), "neutral", 1)
        f0[age], dur[age] = _median_f0_and_rms(x)[0], len(x)
    assert f0["child"] > f0["adult"] * 1.15 > f0["senior"] * 1.15
    assert dur["senior"] > dur["adult"] > dur["child"]


@pytest.mark.parametrize("noise_type,snr_db", [("white", 5.0), ("pink", 20.0)])
def test_noise_reaches_requested_snr(tmp_path, noise_type, snr_db):
    spk = _speaker(language="de")
    clean = _render(tmp_path, spk, "angry", 2)
    noisy = _render(tmp_path, spk, "angry", 2, snr_db=snr_db, noise_type=noise_type, tag="n")
    assert len(clean) == len(noisy)
    # The writer may scale speech and noise together (peak protection): project out the gain.
    g = float(noisy @ clean / (clean @ clean))
    noise = noisy - g * clean
    measured = 10 * np.log10(np.sum((g * clean) ** 2) / np.sum(noise ** 2))
    assert abs(measured - snr_db) <= 1.0, measured
    if noise_type == "pink":  # more power below 1 kHz than above 5 kHz per Hz
        spec = np.abs(np.fft.rfft(noise)) ** 2
        freqs = np.fft.rfftfreq(len(noise), 1 / 22050)
        assert spec[(freqs > 50) & (freqs < 1000)].mean() > 5 * spec[freqs > 5000].mean()


def test_failing_espeak_names_utterance_and_command(tmp_path):
    fake = tmp_path / "fake-espeak"
    fake.write_text("#!/bin/sh\necho 'synthetic failure' >&2\nexit 3\n")
    fake.chmod(fake.stat().st_mode | stat.S_IEXEC)
    _, plans = G.plan_corpus(G.SynthConfig(num_utts=4, seed=0), tmp_path)
    with pytest.raises(G.SynthError) as err:
        G.render_utterance(plans[2], executable=str(fake))
    msg = str(err.value)
    assert plans[2].utt_id in msg and "status 3" in msg and "synthetic failure" in msg
    assert str(fake) in msg and "-p" in msg and plans[2].prosody.voice in msg
    assert not list(tmp_path.glob("*.wav")), "no partial wav may be left"


def test_missing_espeak_gives_install_command(tmp_path, monkeypatch, capsys):
    monkeypatch.setenv("PATH", str(tmp_path))
    with pytest.raises(G.SynthError, match=re.escape("apt-get install espeak-ng")):
        G.check_espeak()
    rc = make_synth_corpus.main(["--out", str(tmp_path / "o"), "--lang_dir", str(tmp_path / "l"),
                                 "--num_utts", "10"])
    assert rc == 1 and "apt-get install espeak-ng" in capsys.readouterr().err


def test_wav_dir_and_factor_subsets(tmp_path, capsys):
    out, lang, wav_dir = tmp_path / "d", tmp_path / "l", tmp_path / "audio"
    rc = make_synth_corpus.main(["--out", str(out), "--lang_dir", str(lang), "--wav_dir", str(wav_dir),
                                 "--num_utts", "12", "--languages", "cmn,en", "--emotions", "sad,angry",
                                 "--nj", "2", "--quiet", "--seed", "7"])
    assert rc == 0
    printed = capsys.readouterr().out
    assert "cramers_v" in printed and "utt/s" in printed
    assert read_list(lang / "language.txt") == ["cmn", "en"]
    assert read_list(lang / "emotion.txt") == ["sad", "angry"]
    for u, path in read_kv(out / "wav.scp").items():
        assert Path(path).parent == wav_dir.resolve() and Path(path).is_file()
    assert set(read_kv(out / "utt2language").values()) == {"cmn", "en"}
    assert set(read_kv(out / "utt2emotion").values()) == {"sad", "angry"}
    assert not (out / "wav").exists()
    # Mandarin utterances carry Chinese characters.
    lang_of = read_kv(out / "utt2language")
    assert all(re.search(r"[\u4e00-\u9fff]", t) for u, t in read_kv(out / "text").items() if lang_of[u] == "cmn")
