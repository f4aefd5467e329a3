"""egs/esd/tts1/local/data.sh on a fabricated ESD tree: the same data dir as egs/esd/style1's data
prep, and phonemes for every utterance (Mandarin characters and English) with language tags."""
from pathlib import Path

from corpus_fabrication import REPO, make_esd, read_table, run_data_sh


def test_tts_data_prep_reuses_style1_and_phonemizes(tmp_path):
    corpus = make_esd(tmp_path / "ESD")
    a, b = tmp_path / "tts", tmp_path / "style"
    proc = run_data_sh("esd", ["--esd", corpus, "--data_dir", a / "all", "--lang_dir", a / "lang"],
                       cwd=REPO / "egs" / "esd" / "tts1")
    assert proc.returncode == 0, proc.stderr + proc.stdout
    ref = run_data_sh("esd", ["--esd", corpus, "--data_dir", b / "all", "--lang_dir", b / "lang"])
    assert ref.returncode == 0, ref.stderr
    names = sorted(p.name for p in (b / "all").iterdir())
    assert sorted(p.name for p in (a / "all").iterdir()) == names
    for n in names:
        assert (a / "all" / n).read_bytes() == (b / "all" / n).read_bytes(), n
    assert not (REPO / "egs" / "esd" / "style1" / "data").exists()      # nothing written into the other recipe

    from parastyle.bin.make_phones import main as make_phones
    from parastyle.text.phonemes import PhoneVocab, read_phones
    assert make_phones(["--lang_dir", str(a / "lang"), "--build_vocab", str(a / "all")]) == 0
    phones = read_phones(a / "all" / "phones")
    lang = dict(read_table(a / "all" / "utt2language"))
    text = dict(read_table(a / "all" / "text"))
    assert set(phones) == set(lang)
    vocab = PhoneVocab.read(a / "lang" / "phones.txt")
    assert vocab.symbols[:2] == ["<pad>", "<blank>"] and {"<chinese>", "<english>"} <= set(vocab.symbols)
    for utt, seq in phones.items():
        assert seq[0] == f"<{lang[utt]}>"
        assert len(seq) > 2 and all(s in vocab.index for s in seq)
        if lang[utt] == "english":       # word boundaries between words (espeak-ng joins some function words)
            words = text[utt].replace(".", " ").replace(",", " ").replace("!", " ").replace("?", " ").split()
            assert 1 <= seq.count("|") <= len(words), (utt, text[utt], seq)
            assert seq[1] != "|" and seq[-1] != "|"
