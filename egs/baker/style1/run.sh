#!/usr/bin/env bash
# Baker CSMSC / BZNSYP (one female Mandarin speaker, neutral).
# ParaMETA style representations (egs/TEMPLATE/style1/style.sh stages 0-5).
# Every variable below can be overridden as --name value, e.g.
#   ./run.sh --baker /data/BZNSYP --stage 0 --stop_stage 3
# On a CPU start with the CPU configs: ./run.sh --methods "egemaps_svm ce parameta"
# (conf/train_ce.yaml, conf/train_parameta.yaml: train.device auto, 3,000 steps; egemaps_svm needs no
# config); the GPU paper configs are conf/train_parameta_<backbone>.yaml (the default below).
# Corpus-defined splits: --split predefined; cross-validation: --folds K | --folds listed.
set -euo pipefail

baker=                         # corpus root; local/README.md says where to obtain it and its layout
stage=0
stop_stage=0
nj=4                        # parallel jobs of feature extraction
seed=0                      # speaker split
split_args="--dev 0.1 --test 0.1"   # dev/test speakers (fractions or counts)
feats_conf=conf/feats.yaml  # 80 log-mel bins at 22,050 Hz (every corpus is resampled here)
train_config=conf/train_parameta_lstm.yaml  # or train_parameta_{cnn,qformer,transformer}.yaml
train_args=""               # extra config overrides, e.g. "--train.max_steps 2000"

. ./path.sh
. ./cmd.sh
passthrough=true . utils/parse_options.sh   # options run.sh does not define go on to the stage script
# One speaker: a speaker-independent split (stage 1) is impossible, so stop_stage defaults
# to 0; the data dir is meant for the training mix of egs/parameta/style1.

./style.sh \
    --stage "${stage}" --stop_stage "${stop_stage}" --nj "${nj}" --seed "${seed}" \
    --data_args "${baker:+--baker ${baker}}" \
    --split_args "${split_args}" \
    --feats_conf "${feats_conf}" \
    --train_config "${train_config}" --train_args "${train_args}" \
    "$@"
