#!/usr/bin/env bash
# ESD (20 speakers; emotion, gender, language): style-controlled TTS on GPU (egs/TEMPLATE/tts1/tts.sh):
# phonemes (espeak-ng, Mandarin + English) -> fastspeech_style at the paper's text-encoder size,
# conditioned on ParaMETA subspace vectors -> HiFi-GAN; judged by classifiers / ASR trained on
# ground truth. Every variable below can be overridden as --name value, e.g.
#   ./run.sh --esd /data/ESD --ngpu 1
set -euo pipefail

esd=                         # corpus root; ../style1/local/README.md says where to obtain it
stage=0
stop_stage=100
nj=8
seed=0
split_args="--dev 2 --test 2"   # dev/test speakers
manipulate_factors="emotion gender language"   # ESD has no age labels

. ./path.sh
. ./cmd.sh
passthrough=true . utils/parse_options.sh   # options run.sh does not define go on to the stage script

./tts.sh \
    --stage "${stage}" --stop_stage "${stop_stage}" --nj "${nj}" --seed "${seed}" \
    --data_args "${esd:+--esd ${esd}}" \
    --split_args "${split_args}" \
    --feats_conf conf/feats.yaml \
    --manipulate_factors "${manipulate_factors}" \
    "$@"
