#!/usr/bin/env bash
# AISHELL-1 (178 h Mandarin, 400 speakers, its own train/dev/test): PolySpeech LM for ASR, TTS and GID
# (one language: no LID) on a GPU, LM near the paper's ~160M parameters (conf/lm.yaml). Semantic
# features: a frozen SSL layer with --ssl_path (the paper: chinese-hubert-base), else the hidden layer of
# the CTC recogniser trained in stage 4. ./run.sh --aishell_root /corpora/aishell --ssl_path /models/chinese-hubert-base
set -euo pipefail

stage=0
stop_stage=100
aishell_root=/corpora/aishell
nj=16
seed=0
ssl_path=""
ssl_layer=9
lm_exps="multi asr tts gid"

. ./path.sh
if [ -f ./cmd.sh ]; then . ./cmd.sh; fi
passthrough=true . utils/parse_options.sh

./poly.sh \
    --stage "${stage}" --stop_stage "${stop_stage}" --nj "${nj}" --seed "${seed}" --split false \
    --data_args "--aishell_root ${aishell_root}" --ssl_path "${ssl_path}" --ssl_layer "${ssl_layer}" \
    --text_units 5000 --kmeans_k 2048 --tokdec_upsample_kmeans 2 \
    --lm_exps "${lm_exps}" --device cuda --tts_max_utts 200 \
    "$@"
