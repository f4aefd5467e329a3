#!/usr/bin/env bash
# LibriSpeech: stage 1 of the VIB disentanglement (textual latent with CTC on frozen SSL layers).
# Its exp dir is the stage_1 model of egs/iemocap/vib1 (--stage1_exp ../../librispeech/vib1/exp/vib_stage1).
# Every variable below can be overridden as --name value, e.g.
#   ./run.sh --librispeech /data/LibriSpeech --ssl_path /models/wavlm_base_plus.pt
set -euo pipefail

librispeech=                # corpus root (local/README.md)
stage=0
stop_stage=5                # stage-1 only: data, tokens, training, CER/WER scoring
nj=4
stage1_config=conf/train_stage1_ssl.yaml    # GPU, frozen SSL model; conf/train_stage1_logmel.yaml runs without one
ssl_path=                   # torchaudio bundle state-dict file or Hugging Face checkpoint dir (ssl configs)
ssl_arch=""                 # torchaudio bundle name when ssl_path is a state-dict file, e.g. HUBERT_LARGE
token_type=char

. ./path.sh
if [ -f ./cmd.sh ]; then . ./cmd.sh; fi
passthrough=true . utils/parse_options.sh   # options run.sh does not define go on to the stage script

ssl_args=""
if grep -q "type: ssl" "${stage1_config}"; then
    [ -n "${ssl_path}" ] || { echo "run.sh: ${stage1_config} needs --ssl_path (a pretrained SSL model)" >&2; exit 1; }
    ssl_args="--model.frontend.path ${ssl_path} ${ssl_arch:+--model.frontend.arch ${ssl_arch}}"
fi
feats_conf=$(grep -q "feats: true" "${stage1_config}" && echo conf/feats.yaml || echo "")

./vib.sh \
    --stage "${stage}" --stop_stage "${stop_stage}" --nj "${nj}" \
    --data_args "${librispeech:+--librispeech ${librispeech}}" --split false \
    --train_set train --valid_set dev --test_sets "test_clean test_other" \
    --feats_conf "${feats_conf}" --token_type "${token_type}" \
    --stage1_config "${stage1_config}" --stage1_args "${ssl_args}" --stage2_targets "" \
    "$@"
