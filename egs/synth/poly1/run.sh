#!/usr/bin/env bash
# Synthetic multilingual corpus (espeak-ng: en, cmn, de, fr, es; two genders; speaker-independent split):
# PolySpeech multitask LM (ASR, TTS, 5-way LID, GID) vs one single-task LM per task, SSET vs k-means
# speech tokens for TTS, semantic-embedding vs token input for ASR. The semantic encoder is the
# hidden layer of a CTC recogniser trained here (no pretrained weights needed); with --ssl_path a
# frozen SSL layer instead. Every variable is overridable: ./run.sh --stage 8 --lm_exps "multi asr".
set -euo pipefail

stage=0
stop_stage=100
num_utts=1500               # 50 speakers x 30 utterances
utts_per_spk=30
seed=0
nj=2
lm_exps="multi asr tts lid gid asr_tokens tts_kmeans"
lm_single_steps=""          # steps of the single-task LMs (default: conf/lm.yaml's, as the multitask LM)

. ./path.sh
if [ -f ./cmd.sh ]; then . ./cmd.sh; fi
passthrough=true . utils/parse_options.sh   # options run.sh does not define go on to the stage script

export lm_single_steps
./poly.sh \
    --stage "${stage}" --stop_stage "${stop_stage}" --nj "${nj}" --seed "${seed}" \
    --data_args "--num_utts ${num_utts} --utts_per_spk ${utts_per_spk}" \
    --lm_exps "${lm_exps}" \
    "$@"
