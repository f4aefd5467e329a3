"""egs/cremad/style1/local/data.sh on a fabricated CREMA-D tree."""
from pathlib import Path

from corpus_fabrication import CREMAD_CLIPS, CREMAD_DEMOGRAPHICS, make_cremad, read_table, run_data_sh, write_wav

EMOTION = {"ANG": "angry", "DIS": "disgust", "FEA": "fear", "HAP": "happy", "NEU": "neutral", "SAD": "sad"}
SENTENCE = {"DFA": "Don't forget a jacket", "IEO": "It's eleven o'clock",
            "TIE": "That is exactly what happened", "IOM": "I'm on my way to the meeting",
            "ITH": "I think I have a doctor's appointment", "IWW": "I wonder what this is about",
            "WSI": "We'll stop in a couple of minutes"}
# Fabricated actors: 1001 51 Male, 1002 31 Female, 1015 50 Male, 1082 30 Female.
AGE = {"1001": "senior", "1002": "adult", "1015": "adult", "1082": "young_adult"}
GENDER = {"1001": "male", "1002": "female", "1015": "male", "1082": "female"}
PERSON = {("senior", "male"): "elderly man", ("adult", "female"): "adult woman",
          ("adult", "male"): "adult man", ("young_adult", "female"): "young woman"}
EMOTION_WORD = {"angry": "angry", "disgust": "disgusted", "fear": "fearful", "happy": "happy",
                "neutral": "neutral", "sad": "sad"}


def prepare(tmp_path: Path, corpus: Path):
    out = tmp_path / "data"
    proc = run_data_sh("cremad", ["--cremad", corpus, "--data_dir", out / "all", "--lang_dir", out / "lang"])
    return proc, out / "all", out / "lang"


def test_data_dir_matches_corpus(tmp_path):
    corpus = make_cremad(tmp_path / "CREMA-D")
    proc, data, lang = prepare(tmp_path, corpus)
    assert proc.returncode == 0, proc.stderr
    expected_utts = sorted((f"cremad_{c[:4]}-{c}" for c in CREMAD_CLIPS), key=lambda u: u.encode())
    utt2spk = read_table(data / "utt2spk")
    assert [u for u, _ in utt2spk] == expected_utts
    for utt, spk in utt2spk:
        assert spk == utt.split("-")[0] and utt.startswith(spk + "-")
    wav_scp = dict(read_table(data / "wav.scp"))
    for utt in expected_utts:
        clip = utt.split("-", 1)[1]
        assert wav_scp[utt] == str((corpus / "AudioWAV" / f"{clip}.wav").resolve())
        assert Path(wav_scp[utt]).is_absolute()
    tables = {name: dict(read_table(data / f"utt2{name}"))
              for name in ("emotion", "age", "gender", "language", "caption")}
    text = dict(read_table(data / "text"))
    for utt in expected_utts:
        actor, sentence, emotion, _level = utt.split("-", 1)[1].split("_")
        assert tables["emotion"][utt] == EMOTION[emotion]
        assert tables["age"][utt] == AGE[actor]
        assert tables["gender"][utt] == GENDER[actor]
        assert tables["language"][utt] == "english"
        assert text[utt] == SENTENCE[sentence]
        word = EMOTION_WORD[EMOTION[emotion]]
        article = "an" if word[0] in "aeiou" else "a"
        assert tables["caption"][utt] == f"{article} {word} {PERSON[(AGE[actor], GENDER[actor])]} speaking English"
    assert tables["caption"]["cremad_1001-1001_DFA_ANG_XX"] == "an angry elderly man speaking English"
    spk2utt = dict(read_table(data / "spk2utt"))
    assert sorted(spk2utt) == [f"cremad_{a[0]}" for a in CREMAD_DEMOGRAPHICS]
    assert spk2utt["cremad_1001"].split() == ["cremad_1001-1001_DFA_ANG_XX", "cremad_1001-1001_IEO_HAP_HI"]
    # the corpus's own vocabularies (mapped onto ParaMETA's sets only when corpora are mixed)
    assert (lang / "emotion.txt").read_text().split() == ["angry", "disgust", "fear", "happy", "neutral", "sad"]
    assert (lang / "age.txt").read_text().split() == ["child", "teenager", "young_adult", "adult", "senior"]
    assert (lang / "gender.txt").read_text().split() == ["male", "female"]
    assert (lang / "language.txt").read_text().split() == ["english"]
    assert not (tmp_path / "data" / "all.tmp").exists()
    from parastyle.data.datadir import validate_data_dir
    assert validate_data_dir(str(data), no_feats=True, lang_dir=str(lang)) == []


def test_missing_corpus_says_where_to_get_it(tmp_path):
    proc = run_data_sh("cremad", ["--data_dir", tmp_path / "all", "--lang_dir", tmp_path / "lang"])
    assert proc.returncode != 0
    assert "github.com/CheyneyComputerScience/CREMA-D" in proc.stderr and "--cremad" in proc.stderr
    assert not (tmp_path / "all").exists()


def test_unknown_emotion_code_names_the_file(tmp_path):
    corpus = make_cremad(tmp_path / "CREMA-D")
    write_wav(corpus / "AudioWAV" / "1002_DFA_CAL_XX.wav", 16000)
    proc, data, _ = prepare(tmp_path, corpus)
    assert proc.returncode != 0
    assert "1002_DFA_CAL_XX.wav" in proc.stderr and "'CAL'" in proc.stderr
    assert not data.exists()


def test_malformed_demographics_line_is_named(tmp_path):
    rows = list(CREMAD_DEMOGRAPHICS)
    rows[1] = ("1002", "thirty", "Female", "Caucasian", "Not Hispanic")
    corpus = make_cremad(tmp_path / "CREMA-D", demographics=rows)
    proc, data, _ = prepare(tmp_path, corpus)
    assert proc.returncode != 0
    assert "VideoDemographics.csv:3" in proc.stderr and "'thirty'" in proc.stderr
    assert not data.exists()


def test_actor_without_demographics_is_an_error(tmp_path):
    corpus = make_cremad(tmp_path / "CREMA-D", demographics=CREMAD_DEMOGRAPHICS[:3])
    proc, _, _ = prepare(tmp_path, corpus)
    assert proc.returncode != 0
    assert "1082_WSI_HAP_LO.wav" in proc.stderr and "actor 1082" in proc.stderr


def test_empty_audio_is_dropped_and_listed(tmp_path):
    corpus = make_cremad(tmp_path / "CREMA-D")
    write_wav(corpus / "AudioWAV" / "1002_MTI_SAD_XX.wav", 16000, seconds=0)
    proc, data, _ = prepare(tmp_path, corpus)
    assert proc.returncode == 0, proc.stderr
    assert "dropped 1 utterance" in proc.stderr and "cremad_1002-1002_MTI_SAD_XX" in proc.stderr
    utts = [u for u, _ in read_table(data / "utt2spk")]
    assert len(utts) == len(CREMAD_CLIPS) and "cremad_1002-1002_MTI_SAD_XX" not in utts
