#!/usr/bin/env bash
# Synthetic corpus (espeak-ng, English; emotion, gender, age and speaker known exactly):
# two-stage VIB disentanglement. Stage 1 learns a textual latent with CTC on the transcripts;
# stage 2 learns an acoustic latent for emotion (speaker-independent split) and for speaker id
# (closed set: every speaker's utterances divided between spk_train/spk_dev/spk_test); then linear
# probes of both latents. Every variable is overridable: ./run.sh --stage 6 --num_utts 400.
set -euo pipefail

stage=0
stop_stage=100
num_utts=640                # 40 speakers x 16 utterances (about 6 min end to end on 2 CPU cores)
utts_per_spk=16
seed=0
nj=2
split_args="--dev 0.1 --test 0.2"       # speakers, for stage 1 and emotion
spk_split_args="--dev 0.1 --test 0.2"   # utterances within every speaker, for speaker id
stage2_targets="emotion speaker"
feats_conf=conf/feats.yaml
stage1_args=""              # extra config overrides of stage 1, e.g. "--train.max_steps 400"
stage2_args=""

. ./path.sh
if [ -f ./cmd.sh ]; then . ./cmd.sh; fi
passthrough=true . utils/parse_options.sh   # options run.sh does not define go on to the stage script

./vib.sh \
    --stage "${stage}" --stop_stage "${stop_stage}" --nj "${nj}" --seed "${seed}" \
    --data_args "--num_utts ${num_utts} --utts_per_spk ${utts_per_spk}" \
    --split_args "${split_args}" --spk_split_args "${spk_split_args}" \
    --feats_conf "${feats_conf}" \
    --stage1_config conf/train_stage1.yaml --stage2_config conf/train_stage2.yaml \
    --stage1_args "${stage1_args}" --stage2_args "${stage2_args}" \
    --stage2_targets "${stage2_targets}" \
    "$@"
