"""egs/baker/style1/local/data.sh on a fabricated Baker CSMSC (BZNSYP) tree."""
from pathlib import Path

import soundfile as sf

from corpus_fabrication import BAKER_LABELS, baker_label_text, make_baker, read_table, run_data_sh


def prepare(tmp_path: Path, corpus: Path):
    out = tmp_path / "data"
    proc = run_data_sh("baker", ["--baker", corpus, "--data_dir", out / "all", "--lang_dir", out / "lang"])
    return proc, out / "all", out / "lang"


def test_data_dir_matches_corpus(tmp_path):
    corpus = make_baker(tmp_path / "BZNSYP")
    proc, data, lang = prepare(tmp_path, corpus)
    assert proc.returncode == 0, proc.stderr
    utts = [f"baker_csmsc-{u}" for u, _, _ in BAKER_LABELS]
    assert read_table(data / "utt2spk") == [(u, "baker_csmsc") for u in utts]
    wav_scp = dict(read_table(data / "wav.scp"))
    assert sf.info(wav_scp["baker_csmsc-000001"]).samplerate == 48000
    assert read_table(data / "text") == [
        ("baker_csmsc-000001", "卡尔普陪外孙玩滑梯。"),
        ("baker_csmsc-000002", "假语村言别再拥抱我。"),
        ("baker_csmsc-000003", "宝马配挂跛骡鞍，貂蝉怨枕董翁榻。"),
    ]
    for name, label in (("gender", "female"), ("language", "chinese"), ("emotion", "neutral")):
        assert read_table(data / f"utt2{name}") == [(u, label) for u in utts]
    assert not (data / "utt2age").exists()
    assert set(dict(read_table(data / "utt2caption")).values()) == {"a neutral woman speaking Chinese"}
    assert (lang / "language.txt").read_text().split() == ["chinese"]   # the corpus's own vocabulary
    from parastyle.data.datadir import validate_data_dir
    assert validate_data_dir(str(data), no_feats=True, lang_dir=str(lang)) == []


def test_missing_pinyin_line_is_named(tmp_path):
    corpus = make_baker(tmp_path / "BZNSYP")
    label_file = corpus / "ProsodyLabeling" / "000001-010000.txt"
    lines = baker_label_text().splitlines()
    del lines[3]  # pinyin of 000002: its text line (line 3) is now followed by 000003's text line
    label_file.write_text("\n".join(lines) + "\n", encoding="utf-8")
    proc, data, _ = prepare(tmp_path, corpus)
    assert proc.returncode != 0
    assert "000001-010000.txt:4" in proc.stderr and "pinyin line of utterance 000002" in proc.stderr
    assert not data.exists()


def test_listed_utterance_without_wav_is_named(tmp_path):
    corpus = make_baker(tmp_path / "BZNSYP")
    (corpus / "Wave" / "000003.wav").unlink()
    proc, _, _ = prepare(tmp_path, corpus)
    assert proc.returncode != 0
    assert "000001-010000.txt:5" in proc.stderr and "000003.wav does not exist" in proc.stderr


def test_missing_corpus_says_where_to_get_it(tmp_path):
    proc = run_data_sh("baker", ["--baker", tmp_path, "--data_dir", tmp_path / "all"])
    assert proc.returncode != 0
    assert "data-baker.com" in proc.stderr and "--baker" in proc.stderr
