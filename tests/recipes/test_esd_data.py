"""egs/esd/style1/local/data.sh on a fabricated ESD tree."""
from pathlib import Path

from corpus_fabrication import ESD_SPEAKERS, esd_folder, make_esd, read_table, run_data_sh, write_wav

GENDER = {"0001": "female", "0003": "female", "0011": "male", "0014": "male"}  # ESD ReadMe
LANGUAGE = {"0001": "chinese", "0003": "chinese", "0011": "english", "0014": "english"}
EMOTION = {"Neutral": "neutral", "Angry": "angry", "Happy": "happy", "Sad": "sad", "Surprise": "surprise"}


def prepare(tmp_path: Path, corpus: Path):
    out = tmp_path / "data"
    proc = run_data_sh("esd", ["--esd", corpus, "--data_dir", out / "all", "--lang_dir", out / "lang"])
    return proc, out / "all", out / "lang"


def expected_utts():
    return {f"esd_{spk}-{spk}_{n:06d}": (spk, n, subset, text)
            for spk, (_, utts) in ESD_SPEAKERS.items() for n, subset, text in utts}


def test_data_dir_matches_corpus(tmp_path):
    corpus = make_esd(tmp_path / "ESD")
    proc, data, lang = prepare(tmp_path, corpus)
    assert proc.returncode == 0, proc.stderr
    expected = expected_utts()
    utt2spk = read_table(data / "utt2spk")
    assert [u for u, _ in utt2spk] == sorted(expected, key=lambda u: u.encode())
    assert all(spk == f"esd_{expected[utt][0]}" for utt, spk in utt2spk)
    wav_scp = dict(read_table(data / "wav.scp"))
    text = dict(read_table(data / "text"))
    emotion = dict(read_table(data / "utt2emotion"))
    gender = dict(read_table(data / "utt2gender"))
    language = dict(read_table(data / "utt2language"))
    for utt, (spk, n, subset, sentence) in expected.items():
        folder = esd_folder(n)
        assert wav_scp[utt] == str((corpus / spk / folder / subset / f"{spk}_{n:06d}.wav").resolve())
        assert emotion[utt] == EMOTION[folder]
        assert gender[utt] == GENDER[spk]
        assert language[utt] == LANGUAGE[spk]
        assert text[utt] == sentence  # decoded from gb2312 / utf-16 / utf-8 transcripts
    assert not (data / "utt2age").exists()  # ESD has no age annotation: unknown, not defaulted
    caption = dict(read_table(data / "utt2caption"))
    assert caption["esd_0001-0001_000001"] == "a neutral woman speaking Chinese"
    assert caption["esd_0011-0011_001402"] == "a surprised man speaking English"
    assert caption["esd_0014-0014_000400"] == "an angry man speaking English"
    assert not (lang / "age.txt").exists()       # ESD does not annotate age: no vocabulary, no utt2age
    assert (lang / "emotion.txt").read_text().split() == ["neutral", "angry", "happy", "sad", "surprise"]
    from parastyle.data.datadir import validate_data_dir
    assert validate_data_dir(str(data), no_feats=True, lang_dir=str(lang)) == []


def test_line_with_spaces_instead_of_tabs_is_read_and_reported(tmp_path):
    write_wav(tmp_path / "ESD" / "0011" / "Neutral" / "train" / "0011_000003.wav", 16000)
    corpus = make_esd(tmp_path / "ESD", extra_lines={"0011": ["0011_000003 He dreamt them all night. Neutral"]})
    proc, data, _ = prepare(tmp_path, corpus)
    assert proc.returncode == 0, proc.stderr
    assert "0011.txt: 1 line(s)" in proc.stderr and "lines 3" in proc.stderr
    assert dict(read_table(data / "text"))["esd_0011-0011_000003"] == "He dreamt them all night."


def test_malformed_transcript_line_is_named(tmp_path):
    corpus = make_esd(tmp_path / "ESD", extra_lines={"0011": ["0011_000005\tonly text"]})
    proc, data, _ = prepare(tmp_path, corpus)
    assert proc.returncode != 0
    assert "0011.txt:3" in proc.stderr and "expected '<utt>" in proc.stderr
    assert not data.exists()


def test_unknown_emotion_in_transcript_is_named(tmp_path):
    corpus = make_esd(tmp_path / "ESD", extra_lines={"0014": ["0014_000010\tA new line.\tCalm"]})
    proc, _, _ = prepare(tmp_path, corpus)
    assert proc.returncode != 0
    assert "0014.txt:3" in proc.stderr and "'Calm'" in proc.stderr


def test_listed_utterance_without_wav_is_named(tmp_path):
    corpus = make_esd(tmp_path / "ESD", extra_lines={"0014": ["0014_000010\tA new line.\tNeutral"]})
    proc, _, _ = prepare(tmp_path, corpus)
    assert proc.returncode != 0
    assert "0014.txt:3" in proc.stderr and "0014_000010" in proc.stderr and "wav" in proc.stderr


def test_wav_in_the_wrong_emotion_folder_is_named(tmp_path):
    corpus = make_esd(tmp_path / "ESD")
    write_wav(corpus / "0011" / "Happy" / "train" / "0011_000002.wav", 16000)
    proc, _, _ = prepare(tmp_path, corpus)
    assert proc.returncode != 0
    assert "Happy/train/0011_000002.wav" in proc.stderr and "belongs to Neutral" in proc.stderr


def test_missing_corpus_says_where_to_get_it(tmp_path):
    proc = run_data_sh("esd", ["--esd", tmp_path / "nowhere", "--data_dir", tmp_path / "all"])
    assert proc.returncode != 0
    assert "HLTSingapore/Emotional-Speech-Data" in proc.stderr and "--esd" in proc.stderr


def test_corpus_folder_with_spaces_needs_a_link(tmp_path):
    # The corpus unpacks to "Emotion Speech Dataset/": a wav.scp entry cannot hold the spaces.
    corpus = make_esd(tmp_path / "Emotion Speech Dataset")
    proc, data, _ = prepare(tmp_path, corpus)
    assert proc.returncode != 0
    assert "contains whitespace" in proc.stderr and "ln -s" in proc.stderr
    link = tmp_path / "ESD"
    link.symlink_to(corpus)
    proc, data, _ = prepare(tmp_path, link)
    assert proc.returncode == 0, proc.stderr
    assert all(path.startswith(str(link) + "/") for _, path in read_table(data / "wav.scp"))


def test_latin1_transcript_and_wav_without_line(tmp_path):
    speakers = {"0016": ("latin-1", [(705, "train", "The café was closed."), (1500, "test", "What a surprise!")])}
    corpus = make_esd(tmp_path / "ESD", speakers=speakers)
    proc, data, _ = prepare(tmp_path, corpus)
    assert proc.returncode == 0, proc.stderr
    assert dict(read_table(data / "text"))["esd_0016-0016_000705"] == "The café was closed."
    assert dict(read_table(data / "utt2gender"))["esd_0016-0016_001500"] == "female"
    write_wav(corpus / "0016" / "Sad" / "test" / "0016_001390.wav", 16000)  # no transcript line
    proc, _, _ = prepare(tmp_path, corpus)
    assert proc.returncode != 0
    assert "0016_001390.wav: no line for 0016_001390" in proc.stderr and "0016.txt" in proc.stderr
