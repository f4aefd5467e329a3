#!/usr/bin/env bash
# ParaSpeechCLAP on the synthetic corpus (CPU, small): log-mel CNN speech tower + frozen MiniLM
# text tower with trainable projection heads; InfoNCE + tag BCE through paraphrases.
set -euo pipefail

stage=0
stop_stage=100
nj=2
num_utts=1200                # synthetic utterances (local/data.sh)
utts_per_spk=8               # 150 synthetic speakers
seed=0
train_config=conf/train_clap.yaml
train_args=""

passthrough=true . utils/parse_options.sh   # options run.sh does not define go on to the stage script

./clap.sh \
    --stage "${stage}" --stop_stage "${stop_stage}" --nj "${nj}" \
    --data_args "--num_utts ${num_utts} --utts_per_spk ${utts_per_spk} --seed ${seed}" \
    --split true --split_args "--dev 0.15 --test 0.2 --seed ${seed}" \
    --train_set train --valid_set dev --test_sets test \
    --feats true --feats_conf conf/feats.yaml \
    --train_config "${train_config}" --train_args "${train_args}" \
    --eval_label_names conf/label_names.json \
    --bon_prompt "An old man sounds gloomy while speaking French." \
    --bon_candidates data/test/wav.scp \
    "$@"
