"""egs/paraspeechcaps/clap1/local/prepare_paraspeechcaps.py on fabricated parquet files + silent wavs."""
import json
import subprocess
import sys
from pathlib import Path

import numpy as np
import pytest

pa = pytest.importorskip("pyarrow")
import pyarrow.parquet as pq  # noqa: E402
import soundfile as sf  # noqa: E402

from parastyle.fileio import read_kv, read_list  # noqa: E402

RECIPE = Path(__file__).resolve().parents[2] / "egs" / "paraspeechcaps" / "clap1"
SCRIPT = RECIPE / "local" / "prepare_paraspeechcaps.py"


def write_parquet(path: Path, rows):
    path.parent.mkdir(parents=True, exist_ok=True)
    cols = {k: [r[k] for r in rows] for k in rows[0]}
    pq.write_table(pa.table(cols), path)


def row(source, rel, caps, intr, sit, dur=1.0, **extra):
    r = {"source": source, "relative_audio_path": rel, "text_description": caps,
         "intrinsic_tags": intr, "situational_tags": sit, "duration": dur}
    r.update(extra)
    return r


def make_wav(root: Path, source: str, rel: str, seconds=0.2):
    p = root / source / rel
    p.parent.mkdir(parents=True, exist_ok=True)
    sf.write(p, np.zeros(int(16000 * seconds), dtype=np.float32), 16000)


def fabricate(tmp: Path):
    audio = tmp / "audio"
    psc = tmp / "psc"
    intr_rows = [row("expresso", "ex01/default/ex01_default_001.wav", ["A deep, husky voice."], ["deep", "husky"], []),
                 row("ears", "p001/emo_amazement_freeform.wav", ["Shrill and fast.", "A high voice."],
                     ["shrill"], [], 2.5),
                 row("voxceleb", "id10001/1zcIwhmdeo4/00001.wav", ["A nasal speaker."], ["nasal"], [])]
    sit_rows = [row("expresso", "ex02/whisper/ex02_whisper_007.wav", ["Someone whispers."], [], ["whispered"]),
                row("emilia", "EN/EN_B00000/EN_B00000_S00000_W000000.wav", ["Sarcastic tone."], ["deep"],
                    ["sarcastic"])]
    eval_ret = [row("ears", "p002/emo_neutral_sentences.wav", ["A calm deep voice."], ["deep"], []),
                row("ears", "p003/emo_neutral_sentences.wav", ["A calm deep voice."], ["deep"], [])]
    eval_cls = [row("ears", "p004/a.wav", ["x"], ["shrill", "fast talking"], []),
                row("ears", "p005/b.wav", ["y"], ["deep"], []),
                row("ears", "p006/c.wav", ["z"], ["nasal", "husky"], [])]
    for r in intr_rows + sit_rows + eval_ret + eval_cls:
        make_wav(audio, r["source"], r["relative_audio_path"])
    write_parquet(psc / "paraspeechcaps-intrinsic-train" / "data" / "train-00000-of-00001.parquet", intr_rows)
    write_parquet(psc / "paraspeechcaps-situational-train" / "data" / "train-00000-of-00001.parquet", sit_rows)
    ev = psc / "paraspeechclap-eval-intrinsic" / "data"
    write_parquet(ev / "test-00000-of-00001.parquet", eval_ret)
    write_parquet(ev / "classification_pitch-00000-of-00001.parquet", eval_cls)
    return audio, psc


def run(args, cwd=None):
    return subprocess.run([sys.executable, str(SCRIPT)] + [str(a) for a in args], capture_output=True, text=True,
                          cwd=cwd)


def test_prepare_all_variants(tmp_path):
    audio, psc = fabricate(tmp_path)
    out = tmp_path / "data"
    r = run(["--audio_root", audio, "--out", out,
             "--intrinsic_train", psc / "paraspeechcaps-intrinsic-train",
             "--situational_train", psc / "paraspeechcaps-situational-train",
             "--eval_intrinsic", psc / "paraspeechclap-eval-intrinsic",
             "--class_labels", RECIPE / "conf" / "classification_labels.json"])
    assert r.returncode == 0, r.stderr
    ti = out / "train_intrinsic"
    wav = read_kv(ti / "wav.scp", check_sorted=True)
    uid = "expresso-ex01-default-ex01_default_001"
    assert set(wav) == {uid, "ears-p001-emo_amazement_freeform", "voxceleb-id10001-1zcIwhmdeo4-00001"}
    assert wav[uid] == str((audio / "expresso/ex01/default/ex01_default_001.wav").resolve())
    assert read_kv(ti / "utt2caption")["ears-p001-emo_amazement_freeform"] == "Shrill and fast."
    assert read_kv(ti / "utt2tags")[uid] == "deep,husky"
    assert read_kv(ti / "utt2dur")["ears-p001-emo_amazement_freeform"] == "2.500"
    assert read_kv(ti / "utt2spk")[uid] == uid
    assert read_kv(ti / "spk2utt")[uid] == uid
    # situational training set carries situational tags only
    ts = read_kv(out / "train_situational" / "utt2tags")
    assert ts["emilia-EN-EN_B00000-EN_B00000_S00000_W000000"] == "sarcastic"
    # combined: union, situational repeated round(3/2) = 2 times, both tag families
    comb = read_kv(out / "train_combined" / "utt2tags")
    assert len(read_kv(out / "train_combined" / "wav.scp")) == 3 + 2 * 2
    assert comb["emilia-EN-EN_B00000-EN_B00000_S00000_W000000-rep1"] == "deep,sarcastic"
    assert comb["emilia-EN-EN_B00000-EN_B00000_S00000_W000000"] == "deep,sarcastic"
    # evaluation: retrieval split and classification split with its factor and vocabulary
    ret = read_kv(out / "eval_intrinsic_test" / "utt2caption")
    assert list(ret.values()) == ["A calm deep voice."] * 2
    cls = read_kv(out / "eval_intrinsic_classification_pitch" / "utt2pitch")
    assert cls == {"ears-p004-a": "shrill", "ears-p005-b": "deep", "ears-p006-c": "nasal"}
    assert read_kv(out / "eval_intrinsic_classification_pitch" / "utt2tags")["ears-p004-a"] == "shrill,fast_talking"
    assert read_list(out / "lang" / "pitch.txt") == ["shrill", "nasal", "deep"]
    assert read_list(out / "lang" / "intrinsic_tags.txt") == ["deep", "husky", "nasal", "shrill"]
    assert "sarcastic" in read_list(out / "lang" / "tags.txt")
    assert not list(out.glob("*.tmp"))


def test_all_captions_and_validator(tmp_path):
    audio, psc = fabricate(tmp_path)
    out = tmp_path / "data"
    r = run(["--audio_root", audio, "--out", out, "--all_captions",
             "--intrinsic_train", psc / "paraspeechcaps-intrinsic-train"])
    assert r.returncode == 0, r.stderr
    caps = read_kv(out / "train_intrinsic" / "utt2caption")
    assert caps["ears-p001-emo_amazement_freeform-c1"] == "A high voice."
    from parastyle.data.datadir import validate_data_dir
    assert validate_data_dir(out / "train_intrinsic", no_feats=True, no_text=True) == []


def test_errors_name_the_problem(tmp_path):
    audio, psc = fabricate(tmp_path)
    (audio / "ears" / "p005" / "b.wav").unlink()
    out = tmp_path / "data"
    args = ["--audio_root", audio, "--out", out, "--eval_intrinsic", psc / "paraspeechclap-eval-intrinsic",
            "--class_labels", RECIPE / "conf" / "classification_labels.json"]
    r = run(args)
    assert r.returncode == 1 and "1 audio file(s) not found" in r.stderr and "p005/b.wav" in r.stderr
    r = run(args + ["--skip_missing"])
    assert r.returncode == 0, r.stderr
    assert "left out" in r.stderr
    assert len(read_kv(out / "eval_intrinsic_classification_pitch" / "utt2pitch")) == 2
    # no candidate styles for the attribute -> error naming it
    empty = tmp_path / "none.json"
    empty.write_text(json.dumps({}))
    r = run(["--audio_root", audio, "--out", out, "--skip_missing",
             "--eval_intrinsic", psc / "paraspeechclap-eval-intrinsic", "--class_labels", empty])
    assert r.returncode == 1 and "'pitch'" in r.stderr
    # a missing column is named with the file
    bad = tmp_path / "bad" / "data" / "train-00000-of-00001.parquet"
    write_parquet(bad, [{"source": "ears", "relative_audio_path": "p001/x.wav"}])
    r = run(["--audio_root", audio, "--out", out, "--intrinsic_train", tmp_path / "bad"])
    assert r.returncode == 1 and "missing column(s)" in r.stderr and "text_description" in r.stderr


def test_data_sh_prints_instructions_without_data(tmp_path):
    r = subprocess.run(["bash", "local/data.sh", "--psc_root", str(tmp_path / "nope")], cwd=RECIPE,
                       capture_output=True, text=True, env={"PATH": "/usr/bin:/bin"})
    assert r.returncode == 1
    assert "ajd12342/paraspeechclap-eval-intrinsic" in r.stderr and "psc_root" in r.stderr
