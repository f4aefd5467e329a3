"""egs/ljspeech/style1/local/data.sh on a fabricated LJSpeech-1.1 tree."""
from pathlib import Path

from corpus_fabrication import LJSPEECH_METADATA, make_ljspeech, read_table, run_data_sh


def prepare(tmp_path: Path, corpus: Path, *extra):
    out = tmp_path / "data"
    proc = run_data_sh("ljspeech", ["--ljspeech", corpus, "--data_dir", out / "all",
                                    "--lang_dir", out / "lang", *extra])
    return proc, out / "all", out / "lang"


def test_data_dir_matches_corpus(tmp_path):
    corpus = make_ljspeech(tmp_path / "LJSpeech-1.1")
    proc, data, lang = prepare(tmp_path, corpus)
    assert proc.returncode == 0, proc.stderr
    utts = [f"ljspeech_lj-{u}" for u, _, _ in LJSPEECH_METADATA]
    assert read_table(data / "utt2spk") == [(u, "ljspeech_lj") for u in utts]
    assert read_table(data / "spk2utt") == [("ljspeech_lj", " ".join(utts))]
    assert read_table(data / "wav.scp") == [
        (f"ljspeech_lj-{u}", str((corpus / "wavs" / f"{u}.wav").resolve())) for u, _, _ in LJSPEECH_METADATA]
    # text is the normalized (third) column
    assert dict(read_table(data / "text"))["ljspeech_lj-LJ002-0026"] == \
        "in the three years between eighteen thirteen and eighteen sixteen,"
    for name, label in (("gender", "female"), ("language", "english"), ("emotion", "neutral"), ("age", "adult")):
        assert read_table(data / f"utt2{name}") == [(u, label) for u in utts]
    assert set(dict(read_table(data / "utt2caption")).values()) == {"a neutral adult woman speaking English"}
    assert (lang / "gender.txt").read_text().split() == ["female"]     # the corpus's own vocabulary
    from parastyle.data.datadir import validate_data_dir
    assert validate_data_dir(str(data), no_feats=True, lang_dir=str(lang)) == []


def test_without_the_recipe_assumption_emotion_and_age_are_unknown(tmp_path):
    corpus = make_ljspeech(tmp_path / "LJSpeech-1.1")
    proc, data, _ = prepare(tmp_path, corpus, "--assume_neutral_adult", "false")
    assert proc.returncode == 0, proc.stderr
    assert not (data / "utt2emotion").exists() and not (data / "utt2age").exists()
    assert set(dict(read_table(data / "utt2caption")).values()) == {"a woman speaking English"}


def test_malformed_metadata_line_is_named(tmp_path):
    rows = list(LJSPEECH_METADATA)
    corpus = make_ljspeech(tmp_path / "LJSpeech-1.1", rows)
    with open(corpus / "metadata.csv", "a", encoding="utf-8") as f:
        f.write("LJ003-0001|only two fields\n")
    proc, data, _ = prepare(tmp_path, corpus)
    assert proc.returncode != 0
    assert "metadata.csv:4" in proc.stderr and "3 '|'-separated fields" in proc.stderr
    assert not data.exists()


def test_listed_clip_without_wav_is_named(tmp_path):
    corpus = make_ljspeech(tmp_path / "LJSpeech-1.1")
    (corpus / "wavs" / "LJ001-0002.wav").unlink()
    proc, _, _ = prepare(tmp_path, corpus)
    assert proc.returncode != 0
    assert "metadata.csv:2" in proc.stderr and "LJ001-0002.wav does not exist" in proc.stderr


def test_missing_corpus_says_where_to_get_it(tmp_path):
    proc = run_data_sh("ljspeech", ["--data_dir", tmp_path / "all"])
    assert proc.returncode != 0
    assert "LJSpeech-1.1.tar.bz2" in proc.stderr and "--ljspeech" in proc.stderr


def test_unreadable_wav_is_named(tmp_path):
    corpus = make_ljspeech(tmp_path / "LJSpeech-1.1")
    (corpus / "wavs" / "LJ001-0002.wav").write_bytes(b"not a RIFF file at all")
    proc, data, _ = prepare(tmp_path, corpus)
    assert proc.returncode != 0
    assert "metadata.csv:2" in proc.stderr and "cannot read audio file" in proc.stderr
    assert not data.exists()
