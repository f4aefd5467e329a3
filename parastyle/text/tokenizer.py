"""Tokenizers mapping transcripts to CTC label sequences.

The token vocabulary is a file ``data/lang/tokens.txt``, one token per line, index = line number
(0-based). Index 0 is the CTC blank ``<blank>``.

* Character units (default): every character of the training text is a token; the space is the
  token ``<space>``. A character that is not in the vocabulary is an error naming the utterance.
* Sentencepiece units: a sentencepiece model trained on the training text
  (``<lang_dir>/<model_prefix>.model``); token ``i + 1`` is sentencepiece piece ``i`` (piece 0 is
  sentencepiece's own unknown piece, which is never produced for known text: text that needs it is
  an error naming the utterance).
"""
from __future__ import annotations

from pathlib import Path
from typing import Dict, Iterable, List, Mapping, Optional, Sequence

from parastyle.fileio import DataError, atomic_write, read_list, write_list

BLANK = "<blank>"
SPACE = "<space>"


class TokenizerError(DataError):
    """Text that cannot be tokenized with the vocabulary (the message names the utterance)."""


def build_char_vocab(texts: Mapping[str, str]) -> List[str]:
    """Character vocabulary of ``{utt: text}``: ``[<blank>, <space>, sorted other characters]``."""
    chars = set()
    for utt, text in texts.items():
        if "\t" in text or "\n" in text:
            raise TokenizerError(f"utterance {utt!r}: text contains a tab or newline: {text!r}")
        chars.update(text)
    chars.discard(" ")
    return [BLANK, SPACE] + sorted(chars)


def write_tokens(path, tokens: Sequence[str]) -> None:
    """Write a token list (one per line) atomically; index 0 must be the blank."""
    if not tokens or tokens[0] != BLANK:
        raise ValueError(f"token 0 must be {BLANK!r}")
    if len(set(tokens)) != len(tokens):
        raise ValueError("duplicate tokens")
    write_list(path, tokens)


def read_tokens(path) -> List[str]:
    """Read ``tokens.txt``; raises DataError when the file is missing or token 0 is not the blank."""
    path = Path(path)
    if not path.is_file():
        raise DataError(f"{path}: token list not found (build it with python -m parastyle.bin.make_tokens)")
    tokens = read_list(path)
    if not tokens or tokens[0] != BLANK:
        raise DataError(f"{path}:1: the first token must be {BLANK!r}, got {tokens[:1]}")
    if len(set(tokens)) != len(tokens):
        raise DataError(f"{path}: duplicate tokens")
    return tokens


class CharTokenizer:
    """Characters <-> token ids. ``encode("ab c", utt) -> [i_a, i_b, i_space, i_c]``."""

    def __init__(self, tokens: Sequence[str]):
        if not tokens or tokens[0] != BLANK or SPACE not in tokens:
            raise ValueError(f"a character vocabulary starts with {BLANK!r} and contains {SPACE!r}")
        self.tokens = list(tokens)
        self.index: Dict[str, int] = {t: i for i, t in enumerate(self.tokens)}
        self.blank = 0

    def __len__(self) -> int:
        return len(self.tokens)

    def encode(self, text: str, utt: Optional[str] = None) -> List[int]:
        ids = []
        for pos, ch in enumerate(text):
            key = SPACE if ch == " " else ch
            i = self.index.get(key)
            if i is None or i == self.blank:
                raise TokenizerError(f"utterance {utt!r}: character {ch!r} at position {pos} of {text!r} is not "
                                     f"in the token vocabulary (rebuild data/lang/tokens.txt from a text that "
                                     f"contains it, or normalise the text)")
            ids.append(i)
        return ids

    def decode(self, ids: Iterable[int]) -> str:
        out = []
        for i in ids:
            i = int(i)
            if i == self.blank:
                continue
            t = self.tokens[i]
            out.append(" " if t == SPACE else t)
        return "".join(out)


def train_sentencepiece(texts: Mapping[str, str], lang_dir, vocab_size: int, model_type: str = "unigram",
                        model_prefix: str = "bpe") -> List[str]:
    """Train ``<lang_dir>/<model_prefix>.model`` on the texts; returns the token list ``[<blank>] + pieces``."""
    import sentencepiece as spm

    lang_dir = Path(lang_dir)
    lang_dir.mkdir(parents=True, exist_ok=True)
    train_txt = lang_dir / f"{model_prefix}.train.txt"
    with atomic_write(train_txt) as f:
        for utt in sorted(texts):
            f.write(texts[utt] + "\n")
    tmp_prefix = lang_dir / f".{model_prefix}.tmp"
    spm.SentencePieceTrainer.train(input=str(train_txt), model_prefix=str(tmp_prefix), vocab_size=vocab_size,
                                   model_type=model_type, character_coverage=1.0, unk_id=0, bos_id=-1,
                                   eos_id=-1, pad_id=-1, minloglevel=2)
    for ext in ("model", "vocab"):
        Path(f"{tmp_prefix}.{ext}").replace(lang_dir / f"{model_prefix}.{ext}")
    sp = spm.SentencePieceProcessor(model_file=str(lang_dir / f"{model_prefix}.model"))
    return [BLANK] + [sp.id_to_piece(i) for i in range(sp.get_piece_size())]


class SentencePieceTokenizer:
    """Sentencepiece units; token id = piece id + 1 (0 is the CTC blank)."""

    def __init__(self, model_path, tokens: Optional[Sequence[str]] = None):
        import sentencepiece as spm

        model_path = Path(model_path)
        if not model_path.is_file():
            raise DataError(f"{model_path}: sentencepiece model not found")
        self.sp = spm.SentencePieceProcessor(model_file=str(model_path))
        pieces = [BLANK] + [self.sp.id_to_piece(i) for i in range(self.sp.get_piece_size())]
        if tokens is not None and list(tokens) != pieces:
            raise DataError(f"{model_path}: its pieces differ from the token list (rebuild tokens.txt with the model)")
        self.tokens = pieces
        self.blank = 0

    def __len__(self) -> int:
        return len(self.tokens)

    def encode(self, text: str, utt: Optional[str] = None) -> List[int]:
        ids = self.sp.encode(text)
        if self.sp.unk_id() in ids:
            raise TokenizerError(f"utterance {utt!r}: {text!r} contains characters unknown to the sentencepiece "
                                 f"model (train it on a text that contains them)")
        return [i + 1 for i in ids]

    def decode(self, ids: Iterable[int]) -> str:
        return self.sp.decode([int(i) - 1 for i in ids if int(i) != self.blank])


def load_tokenizer(token_list, token_type: str = "char", bpemodel=None):
    """Tokenizer from ``tokens.txt`` (``token_type`` char) or a sentencepiece model (``bpe``)."""
    tokens = read_tokens(token_list) if isinstance(token_list, (str, Path)) else list(token_list)
    if token_type == "char":
        return CharTokenizer(tokens)
    if token_type == "bpe":
        if bpemodel is None:
            raise DataError("token_type 'bpe' needs bpemodel (the sentencepiece .model file)")
        return SentencePieceTokenizer(bpemodel, tokens)
    raise ValueError(f"token_type must be char or bpe, got {token_type!r}")


def tokenizer_from_model_conf(conf: Dict, task, model_name: str):
    """The tokenizer of a CTC model config: pops ``token_list`` / ``token_type`` (char | bpe) / ``bpemodel``
    from ``conf`` and records the vocabulary in ``task.tokens`` (saved in the exp's task.yaml), or reuses
    ``task.tokens`` when the exp already has it (scoring, resume)."""
    token_list = conf.pop("token_list", None)
    token_type = conf.pop("token_type", "char")
    bpemodel = conf.pop("bpemodel", None)
    if task.tokens is None:
        if token_list is None:
            raise DataError(f"{model_name} needs a token vocabulary: set model.token_list "
                            f"(data/lang/tokens.txt from python -m parastyle.bin.make_tokens)")
        task.tokens = read_tokens(token_list)
    return load_tokenizer(task.tokens, token_type, bpemodel)
