"""Label vocabularies: explicit files, combined by label name, encoding with precise errors."""
from __future__ import annotations

import pytest

from parastyle.data.vocab import (LabelVocab, encode_labels, encode_tags, load_label_vocab, merge_label_vocabs,
                                  write_label_vocabs)
from parastyle.fileio import DataError


def test_load_label_vocab(tmp_path):
    (tmp_path / "emotion.txt").write_text("neutral\nhappy\nsad\n")
    v = load_label_vocab(tmp_path, "emotion")
    assert v == ["neutral", "happy", "sad"] and v.path == tmp_path / "emotion.txt"
    assert v.index_of("sad") == 2 and v.index_of("angry") is None
    (tmp_path / "age.txt").write_text("child\nadult\nchild\n")
    with pytest.raises(DataError, match=r"age.txt:3: label 'child' repeated \(first on line 1\)"):
        load_label_vocab(tmp_path, "age")
    (tmp_path / "gender.txt").write_text("female\n\nmale\n")
    with pytest.raises(DataError, match=r"gender.txt:2: blank line"):
        load_label_vocab(tmp_path, "gender")
    with pytest.raises(DataError, match=r"language.txt: label vocabulary of factor 'language' not found"):
        load_label_vocab(tmp_path, "language")


def test_write_label_vocabs_new_and_extended(make_data_dir_fixture, tmp_path):
    d = make_data_dir_fixture(factors={"emotion": ("sad", "angry", "happy"), "gender": ("male", "female")})
    lang = tmp_path / "lang"
    lang.mkdir()
    (lang / "emotion.txt").write_text("neutral\nhappy\n")
    vocabs = write_label_vocabs(d, lang)
    assert set(vocabs) == {"emotion", "gender", "tags"}
    # existing order kept, new labels appended in C order; a new vocabulary is C-sorted
    assert (lang / "emotion.txt").read_text().split() == ["neutral", "happy", "angry", "sad"]
    assert (lang / "gender.txt").read_text().split() == ["female", "male"]
    assert (lang / "tags.txt").read_text().split() == ["breathy", "fast", "loud", "low-pitched", "slow"]
    assert vocabs["emotion"] == load_label_vocab(lang, "emotion")


def test_merge_by_name():
    assert merge_label_vocabs(["a", "b"], ["c", "a"], ["d", "b"]) == ["a", "b", "c", "d"]


def test_encode_labels(make_data_dir_fixture, tmp_path):
    d = make_data_dir_fixture(unknown=("spk2-u1",), lang_dir=tmp_path / "lang")
    vocab = load_label_vocab(tmp_path / "lang", "emotion")
    ids = encode_labels(d, "emotion", vocab)
    labels = dict(line.split() for line in (d / "utt2emotion").read_text().splitlines())
    assert ids == {u: vocab.index(lab) for u, lab in labels.items()}
    assert "spk2-u1" not in ids and len(ids) == 11                     # unknown label: absent, not a class
    assert encode_labels(d, "emotion", ["angry", "happy", "neutral", "sad"]) == ids   # a plain list works too


def test_encode_labels_unknown_label_error(make_data_dir_fixture, tmp_path):
    d = make_data_dir_fixture(lang_dir=tmp_path / "lang")
    (tmp_path / "lang" / "emotion.txt").write_text("angry\nhappy\nneutral\n")       # no "sad"
    vocab = load_label_vocab(tmp_path / "lang", "emotion")
    with pytest.raises(DataError) as e:
        encode_labels(d, "emotion", vocab)
    msg = str(e.value)
    assert msg.startswith(f"{d / 'utt2emotion'}:4: utterance 'spk2-u1'")
    assert f"has emotion label 'sad' which is not in the vocabulary {tmp_path / 'lang' / 'emotion.txt'}" in msg
    with pytest.raises(DataError, match="<vocabulary given in memory>"):
        encode_labels(d, "emotion", ["angry"])
    with pytest.raises(DataError, match="no such factor file"):
        encode_labels(d, "age", vocab)


def test_encode_tags(make_data_dir_fixture, tmp_path):
    d = make_data_dir_fixture(lang_dir=tmp_path / "lang")
    vocab = load_label_vocab(tmp_path / "lang", "tags")
    tags = encode_tags(d, vocab)
    assert [vocab[i] for i in tags["spk1-u1"]] == ["breathy", "fast"]
    with pytest.raises(DataError, match=r"utt2tags:1: utterance 'spk1-u1' has tag 'breathy'"):
        encode_tags(d, LabelVocab(["fast"]))
