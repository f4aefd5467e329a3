"""Text units for CTC: character vocabularies (default) and sentencepiece units."""
from parastyle.text.tokenizer import (BLANK, SPACE, CharTokenizer, SentencePieceTokenizer, TokenizerError,
                                      build_char_vocab, load_tokenizer, read_tokens, tokenizer_from_model_conf,
                                      train_sentencepiece, write_tokens)

__all__ = ["BLANK", "SPACE", "CharTokenizer", "SentencePieceTokenizer", "TokenizerError", "build_char_vocab",
           "load_tokenizer", "read_tokens", "tokenizer_from_model_conf", "train_sentencepiece", "write_tokens"]
