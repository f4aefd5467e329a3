#!/usr/bin/env bash
# Style-representation stage script (ParaMETA and classifier baselines), shared by every
# egs/<corpus>/style1 recipe. Called by run.sh; every variable below is overridable as
# --name value. A stage's outputs are written under a temporary name and renamed at its end,
# so a killed stage is redone and never mistaken as complete.
#
#   0 data preparation        local/data.sh -> data/all + ${lang_dir} (the only corpus-specific step)
#   1 split                   data/all -> ${train_set}/${valid_set}/${test_sets}, speaker-independent
#   2 features                feats.scp + utt2num_frames of every set (dump/<set>)
#   3 CMVN + checks           global CMVN of ${train_set}; every set validated with its labels
#   4+                        training and scoring (see below)
set -euo pipefail

log() { echo "$(date '+%Y-%m-%dT%H:%M:%S') ($(basename "$0"):${BASH_LINENO[0]}) $*" >&2; }

stage=0
stop_stage=100
nj=2                        # parallel jobs (data generation, feature extraction)
seed=0                      # seed of the speaker split (local/data.sh gets it too)
data_args=""                # extra arguments of local/data.sh
split_args="--dev 0.1 --test 0.1"   # speakers for dev/test: fractions or counts
train_set=train
valid_set=dev
test_sets="test"            # the first one is written by stage 1; others come from local/data.sh
lang_dir=data/lang          # label vocabularies <factor>.txt
feats_conf=conf/feats.yaml  # front-end of stage 2
dumpdir=dump                # feature archives
# ---- variables of stages 4+ (training and scoring) go here ----
train_config=conf/train_ce.yaml  # stage 4: training config (model, data, optim, scheduler, train, valid)
train_args=""               # stage 4: extra config overrides, e.g. "--optim.lr 5e-4 --train.max_steps 2000"
exp_tag=""                  # stage 4/5: exp/<tag>; default: the config name without "train_" (conf/train_ce.yaml -> ce)
train_ngpu=""               # stage 4: GPUs (>1: torchrun DDP); empty = ${ngpu} of cmd.sh
score_sets=""               # stage 5: sets to score; empty = ${valid_set} ${test_sets}
score_args=""               # stage 5: extra arguments of parastyle.bin.score (e.g. --checkpoint step00001000.pt)
results_md=RESULTS.md       # stage 5: table regenerated from exp/*/decode_*/results.json
backbone=""                 # stages 4-6: replace the configs' encoder by a registered one at its default size
                            # (cnn | lstm | qformer | transformer | tdnn); exp dirs get the suffix _<backbone>
methods=""                  # stages 4-6: methods run in turn, conf/train_<m>.yaml -> exp/<m> (e.g. "ce parameta"); empty = ${train_config} only
eval_parameta_args=""       # stage 6: extra arguments of parastyle.bin.eval_parameta (e.g. --max_tsne 500)

. utils/parse_options.sh
. ./path.sh
if [ -f ./cmd.sh ]; then . ./cmd.sh; fi

first_test=${test_sets%% *}
all_sets="${train_set} ${valid_set} ${test_sets}"

if [ ${stage} -le 0 ] && [ ${stop_stage} -ge 0 ]; then
    log "stage 0: data preparation (local/data.sh) -> data/all, ${lang_dir}"
    # shellcheck disable=SC2086
    local/data.sh --nj "${nj}" --seed "${seed}" ${data_args}
    python -m parastyle.bin.validate_data_dir --no-feats --lang_dir "${lang_dir}" data/all
fi

if [ ${stage} -le 1 ] && [ ${stop_stage} -ge 1 ]; then
    log "stage 1: speaker-independent split of data/all into ${train_set}/${valid_set}/${first_test}"
    tmp=data/.split.tmp
    rm -rf "${tmp}"
    # shellcheck disable=SC2086
    python -m parastyle.bin.split_train_dev_test --seed "${seed}" ${split_args} \
        --report "${tmp}/split_report.txt" data/all "${tmp}/${train_set}" "${tmp}/${valid_set}" "${tmp}/${first_test}"
    for s in ${train_set} ${valid_set} ${first_test}; do
        rm -rf "data/${s}"
        mv "${tmp}/${s}" "data/${s}"
    done
    mv "${tmp}/split_report.txt" data/split_report.txt
    rmdir "${tmp}"
fi

if [ ${stage} -le 2 ] && [ ${stop_stage} -ge 2 ]; then
    log "stage 2: feature extraction (${feats_conf}) for: ${all_sets}"
    for s in ${all_sets}; do
        python -m parastyle.bin.extract_feats --data "data/${s}" --conf "${feats_conf}" \
            --dump "${dumpdir}/${s}" --nj "${nj}"
    done
fi

if [ ${stage} -le 3 ] && [ ${stop_stage} -ge 3 ]; then
    log "stage 3: global CMVN of ${train_set} and validation of: ${all_sets}"
    python -m parastyle.bin.compute_cmvn --data "data/${train_set}"
    for s in ${all_sets}; do
        python -m parastyle.bin.validate_data_dir --lang_dir "${lang_dir}" "data/${s}"
    done
fi

# ==== training and scoring stages (4+) ====

train_ngpu=${train_ngpu:-${ngpu:-0}}
train_configs=${train_config}
if [ -n "${methods}" ]; then
    train_configs=$(for m in ${methods}; do printf 'conf/train_%s.yaml ' "${m}"; done)
fi
exp_tag_arg=${exp_tag}
backbone_args=""
if [ -n "${backbone}" ]; then backbone_args="--model.encoder {\"name\":\"${backbone}\"}"; fi
# ---- stages 4-6 run once per training config (one per method) ----
for train_config in ${train_configs}; do
exp_tag=$(basename "${train_config}" .yaml | sed 's/^train_//')
if [ -z "${methods}" ] && [ -n "${exp_tag_arg}" ]; then exp_tag=${exp_tag_arg}; fi
if [ -n "${backbone}" ]; then exp_tag=${exp_tag}_${backbone}; fi
expdir=exp/${exp_tag}

if [ ${stage} -le 4 ] && [ ${stop_stage} -ge 4 ]; then
    log "stage 4: training ${train_config} on ${train_set} (valid ${valid_set}) -> ${expdir}"
    launcher="python -m parastyle.bin.train"
    if [ "${train_ngpu}" -gt 1 ]; then
        launcher="torchrun --standalone --nproc_per_node ${train_ngpu} -m parastyle.bin.train"
    fi
    # resumes from the newest good checkpoint of ${expdir}; a finished exp (done) is left as it is
    # shellcheck disable=SC2086
    ${launcher} --config "${train_config}" --train_data "data/${train_set}" --valid_data "data/${valid_set}" \
        --lang_dir "${lang_dir}" --exp "${expdir}" ${backbone_args} ${train_args}
fi

if [ ${stage} -le 5 ] && [ ${stop_stage} -ge 5 ]; then
    log "stage 5: scoring ${expdir} on: ${score_sets:-${valid_set} ${test_sets}} -> ${expdir}/decode_<set>, ${results_md}"
    for s in ${score_sets:-${valid_set} ${test_sets}}; do
        # shellcheck disable=SC2086
        python -m parastyle.bin.score --exp "${expdir}" --data "data/${s}" --results_md "${results_md}" \
            --tag "${exp_tag}" ${score_args}
    done
fi

if [ ${stage} -le 6 ] && [ ${stop_stage} -ge 6 ]; then
    model_name=$(python -c 'import sys, yaml; print(yaml.safe_load(open(sys.argv[1]))["model"]["name"])' "${expdir}/config.yaml")
    if [ "${model_name}" = parameta ]; then
        log "stage 6: ParaMETA evaluation of ${expdir} (t-SNE, leakage, manipulation, text prompts) on: ${score_sets:-${valid_set} ${test_sets}}"
        for s in ${score_sets:-${valid_set} ${test_sets}}; do
            # shellcheck disable=SC2086
            python -m parastyle.bin.eval_parameta --exp "${expdir}" --train_data "data/${train_set}" --data "data/${s}" \
                --results_md "${results_md}" ${eval_parameta_args}
        done
    else
        log "stage 6: ${expdir} is a ${model_name} model, not ParaMETA: no ParaMETA evaluation"
    fi
fi
done  # stages 4-6, per training config

log "finished stages ${stage}-${stop_stage}"
