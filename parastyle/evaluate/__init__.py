"""Evaluation procedures as importable functions; ``parastyle/bin`` verbs only parse arguments and call them.

* :mod:`parastyle.evaluate.checks`    front-end identity, finiteness and label checks shared by every evaluation
* :mod:`parastyle.evaluate.scoring`   classifier scoring of a data dir (UAR, macro-F1, confusion matrices)
* :mod:`parastyle.evaluate.parameta`  ParaMETA: t-SNE, leakage matrix, style manipulation, text prompts
* :mod:`parastyle.evaluate.clap`      speech/caption retrieval and zero-shot classification (CLAP, ParaMETA)
* :mod:`parastyle.evaluate.best_of_n` rank candidate waveforms against a style prompt (best-of-N)
"""
