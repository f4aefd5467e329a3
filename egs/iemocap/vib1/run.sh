#!/usr/bin/env bash
# IEMOCAP: stage 2 of the VIB disentanglement (acoustic latent next to the frozen textual latent)
# for 4-class emotion (leave-one-session-out, fold = test session) and closed-set speaker id,
# then probing and attribution. Stage 1 comes from egs/librispeech/vib1 (same SSL model), or is
# trained here on the fold's IEMOCAP transcripts when stage1_exp is empty.
#   ./run.sh --iemocap /data/IEMOCAP_full_release --ssl_path /models/hubert_large.pt --ssl_arch HUBERT_LARGE
#   for f in 1 2 3 4 5; do ./run.sh --fold $f --stage 6; done     # all five folds
set -euo pipefail

iemocap=
stage=0
stop_stage=100
nj=4
fold=1                      # test session
stage1_exp=../../librispeech/vib1/exp/vib_stage1   # empty: train stage 1 on IEMOCAP transcripts (conf/train_stage1_ssl.yaml)
ssl_path=                   # only when stage 1 is trained here
ssl_arch=""
spk_split_args="--dev 0.1 --test 0.2"   # speaker id: every actor's utterances split between sets
stage2_targets="emotion speaker"

. ./path.sh
if [ -f ./cmd.sh ]; then . ./cmd.sh; fi
passthrough=true . utils/parse_options.sh   # options run.sh does not define go on to the stage script

stage1_args=""
[ -n "${ssl_path}" ] && stage1_args="--model.frontend.path ${ssl_path} ${ssl_arch:+--model.frontend.arch ${ssl_arch}}"

./vib.sh \
    --stage "${stage}" --stop_stage "${stop_stage}" --nj "${nj}" \
    --data_args "${iemocap:+--iemocap ${iemocap}}" --split false --spk_split_args "${spk_split_args}" \
    --train_set "fold${fold}/train" --valid_set "fold${fold}/dev" --test_sets "fold${fold}/test" \
    --spk_prefix spk --feats_conf "" \
    --stage1_exp "${stage1_exp}" --stage1_tag "vib_stage1_fold${fold}" --stage1_config conf/train_stage1_ssl.yaml \
    --stage1_args "${stage1_args}" \
    --stage2_config conf/train_stage2_ssl.yaml --stage2_prefix "vib_stage2_fold${fold}" \
    --stage2_targets "${stage2_targets}" \
    "$@"
