import pytest

from parastyle.fileio import DataError
from parastyle.text import (BLANK, SPACE, CharTokenizer, SentencePieceTokenizer, TokenizerError, build_char_vocab,
                            load_tokenizer, read_tokens, train_sentencepiece, write_tokens)


def test_char_vocab_round_trip(tmp_path):
    texts = {"u2": "HELLO WORLD", "u1": "it's ok"}
    tokens = build_char_vocab(texts)
    assert tokens[:2] == [BLANK, SPACE] and " " not in tokens
    assert tokens[2:] == sorted(set("HELLOWORLDit'sok"))
    write_tokens(tmp_path / "tokens.txt", tokens)
    assert read_tokens(tmp_path / "tokens.txt") == tokens
    tok = load_tokenizer(tmp_path / "tokens.txt")
    for t in texts.values():
        ids = tok.encode(t)
        assert 0 not in ids and tok.decode(ids) == t
    assert tok.encode(" ")[0] == tokens.index(SPACE)
    assert tok.decode([0, tokens.index("H"), 0]) == "H"


def test_unknown_character_names_utterance(tmp_path):
    tok = CharTokenizer(build_char_vocab({"a": "abc"}))
    with pytest.raises(TokenizerError, match="'utt7'.*'z'"):
        tok.encode("abz", "utt7")
    (tmp_path / "tokens.txt").write_text(f"{SPACE}\n{BLANK}\n")
    with pytest.raises(DataError, match="first token"):
        read_tokens(tmp_path / "tokens.txt")
    with pytest.raises(DataError, match="not found"):
        read_tokens("/nonexistent/tokens.txt")


def test_sentencepiece_round_trip(tmp_path):
    words = ["alpha", "beta", "gamma", "delta", "kappa", "sigma", "omega"]
    texts = {f"u{i:02d}": " ".join(words[(i + j) % 7] for j in range(5)) for i in range(30)}
    tokens = train_sentencepiece(texts, tmp_path, vocab_size=20, model_prefix="bpe")
    assert tokens[0] == BLANK and (tmp_path / "bpe.model").is_file()
    write_tokens(tmp_path / "tokens.txt", tokens)
    tok = load_tokenizer(tmp_path / "tokens.txt", "bpe", tmp_path / "bpe.model")
    assert isinstance(tok, SentencePieceTokenizer) and len(tok) == 21
    for t in list(texts.values())[:5]:
        ids = tok.encode(t)
        assert min(ids) >= 1 and tok.decode(ids) == t
    with pytest.raises(TokenizerError, match="'x1'"):
        tok.encode("alpha ZZZ", "x1")
