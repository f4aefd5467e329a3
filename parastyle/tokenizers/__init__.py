"""Speech tokenizers of semantic features: SSET (the ``sset`` model, :mod:`parastyle.models.sset`) and the
k-means baseline (:mod:`parastyle.tokenizers.kmeans`); :mod:`parastyle.tokenizers.speech_tokens` writes and
reads a data dir's ``<data>/<name>/utt2tokens``. Text units are sentencepiece pieces
(:mod:`parastyle.text.tokenizer`)."""
