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
# steps of the single-task LMs: the batches of each task that the multitask LM draws (conf/lm.yaml: 1000 steps x
# task weights asr 0.4, tts 0.3, lid 0.15, gid 0.15), so both setups give a task the same number of updates;
# asr_tokens / tts_kmeans take asr's / tts's. "" = conf/lm.yaml's max_steps for every one.
lm_single_steps="asr=400 tts=300 lid=150 gid=150"

. ./path.sh
if [ -f ./cmd.sh ]; then . ./cmd.sh; fi
passthrough=true . utils/parse_options.sh   # options run.sh does not define go on to the stage script

export lm_single_steps
./poly.sh \
    --stage "${stage}" --stop_stage "${stop_stage}" --nj "${nj}" --seed "${seed}" \
    --data_args "--num_utts ${num_utts} --utts_per_spk ${utts_per_spk}" \
    --lm_exps "${lm_exps}" \
    "$@"
