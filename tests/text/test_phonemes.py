"""Phoneme front-end: espeak-ng's own IPA output as the reference, vocabularies, blanks, errors."""
import subprocess

import pytest

from parastyle.text.phonemes import (BLANK, PAD, PhonemeError, PhoneVocab, intersperse, phonemize,
                                     phonemize_data_dir, read_phones, write_phones)
from parastyle.bin.make_phones import main as make_phones

STRESS = str.maketrans("", "", "ˈˌ")


def espeak_reference(text, voice):
    """``espeak-ng --ipa --sep=_``: words separated by spaces, phones by '_' (stress marks dropped)."""
    out = subprocess.run(["espeak-ng", "-q", "--ipa", "--sep=_", "-v", voice, text], capture_output=True,
                         text=True, check=True).stdout
    seq = []
    for word in out.split():
        phones = [p for p in word.translate(STRESS).split("_") if p]
        if phones:
            seq += (["|"] if seq else []) + phones
    return seq


@pytest.mark.parametrize("lang,voice,text", [("en", "en-us", "the cat sat down"), ("de", "de", "das ist gut"),
                                             ("fr", "fr-fr", "il fait beau"), ("es", "es", "hola amigo")])
def test_phones_match_espeak_ipa(lang, voice, text):
    seq = phonemize([text], [lang])[0]
    assert seq[0] == f"<{lang}>"
    assert seq[1:] == espeak_reference(text, voice)


def test_mandarin_characters_give_phones():
    # espeak-ng's cmn output mixes language-switch flags and tone digits (phonemizer drops the flags),
    # so only the phone letters are compared with espeak-ng's own IPA
    seq = phonemize(["你好"], ["cmn"])[0]
    assert seq[0] == "<cmn>" and len(seq) > 3
    letters = lambda xs: [x.rstrip("0123456789") for x in xs if not x.startswith("(") and x.rstrip("0123456789")]
    ref = [p for p in espeak_reference("你好", "cmn") if not p.startswith("(")]
    assert letters(seq[1:]) == letters(ref)


def test_no_language_tag_and_batching_by_language():
    texts, langs = ["good morning", "guten morgen", "good night"], ["en", "de", "en"]
    batch = phonemize(texts, langs, tag_language=False)
    assert batch == [phonemize([t], [lg], tag_language=False)[0] for t, lg in zip(texts, langs)]
    assert all(not s[0].startswith("<") for s in batch)


def test_errors_name_the_utterance():
    with pytest.raises(PhonemeError, match="utterance 'u1': empty text"):
        phonemize(["ok", "  "], ["en", "en"], ["u0", "u1"])
    with pytest.raises(PhonemeError, match="utterance 'u0': language 'klingon' is not supported"):
        phonemize(["qapla"], ["klingon"], ["u0"])
    with pytest.raises(PhonemeError, match="utterance 'u0': espeak-ng .* produced no phone"):
        phonemize(["..."], ["en"], ["u0"])


def test_vocab_build_encode_blank():
    v = PhoneVocab.build([["<en>", "a", "|", "b"], ["<de>", "b", "c"]])
    assert v.symbols == [PAD, BLANK, "<de>", "<en>", "a", "b", "c", "|"]
    assert v.encode(["<en>", "a", "b"], "u") == [3, 4, 5]
    assert v.encode(["<en>", "a"], "u", add_blank=True) == [1, 3, 1, 4, 1]
    assert intersperse([7, 8, 9], 1) == [1, 7, 1, 8, 1, 9, 1]
    with pytest.raises(PhonemeError, match="utterance 'x': phone 'z' is not in the vocabulary"):
        v.encode(["a", "z"], "x")
    with pytest.raises(PhonemeError, match="reserved symbol"):
        v.encode(["a", BLANK], "x")
    with pytest.raises(PhonemeError, match="first two symbols"):
        PhoneVocab(["a", "b"])


def test_make_phones_cli(tmp_path, caplog):
    d, lang = tmp_path / "data", tmp_path / "lang"
    d.mkdir()
    (d / "text").write_text("u1 hello world\nu2 guten tag\n")
    (d / "utt2language").write_text("u1 en\nu2 de\n")
    (d / "utt2spk").write_text("u1 u1\nu2 u2\n")
    assert make_phones(["--lang_dir", str(lang), "--build_vocab", str(d)]) == 0
    ph = read_phones(d / "phones")
    assert ph["u1"] == ["<en>"] + espeak_reference("hello world", "en-us")
    assert ph["u2"] == ["<de>"] + espeak_reference("guten tag", "de")
    vocab = PhoneVocab.read(lang / "phones.txt")
    assert set(vocab.symbols[2:]) == set(ph["u1"]) | set(ph["u2"])
    assert phonemize_data_dir(d) == ph
    # a second dir with a phone outside the vocabulary -> error naming dir and utterance
    d2 = tmp_path / "data2"
    d2.mkdir()
    (d2 / "text").write_text("x1 bonjour\n")
    (d2 / "utt2language").write_text("x1 fr\n")
    assert make_phones(["--lang_dir", str(lang), str(d2)]) == 1
    assert "x1" in caplog.text and "not in the vocabulary" in caplog.text and not (d2 / "phones").exists()
    (d2 / "utt2language").write_text("x2 fr\n")
    assert make_phones(["--lang_dir", str(lang), str(d2)]) == 1
    assert "have no language" in caplog.text
    write_phones(tmp_path / "p", {"a": ["x", "y"]})
    assert read_phones(tmp_path / "p") == {"a": ["x", "y"]}
