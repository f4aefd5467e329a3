#!/usr/bin/env bash
# Style-representation stage script (ParaMETA, classifier baselines, the eGeMAPS baseline), shared
# by every egs/<corpus>/style1 recipe. Called by run.sh; every variable below is overridable as
# --name value. A stage's outputs are written under a temporary name and renamed at its end,
# so a killed stage is redone and never mistaken as complete.
#
#   0 data preparation        local/data.sh -> data/all + ${lang_dir} (the only corpus-specific step)
#   1 split                   split=random: data/all -> ${train_set}/${valid_set}/${first test set},
#                             speaker-independent; split=predefined: the sets local/data.sh wrote.
#                             folds=K: K speaker-group folds data/fold<k>/{train,dev,test} made here;
#                             folds=listed: the folds local/data.sh wrote (checked: no speaker leak)
#   2 features                feats.scp + utt2num_frames of every set (dump/<set>); with folds,
#                             data/all once, shared by every fold's sets
#   3 CMVN + checks           global CMVN of ${train_set}; every set validated with its labels
#   4-6                       per fold x method x backbone: training, scoring, ParaMETA evaluation
#                             -> exp/[<exp_tag>/]<method>[_<backbone>][/fold<k>]
#
# Methods: conf/train_<method>.yaml trained by parastyle.bin.train, or egemaps_svm (openSMILE
# eGeMAPS v02 functionals + linear SVM, C chosen on dev; conf/train_egemaps_svm.yaml optional).
# With folds, RESULTS.md gets per-fold rows (fold<k>/test), a pooled row and mean +- std.
set -euo pipefail

log() { echo "$(date '+%Y-%m-%dT%H:%M:%S') ($(basename "$0"):${BASH_LINENO[0]}) $*" >&2; }

stage=0
stop_stage=100
nj=2                        # parallel jobs (data generation, feature extraction)
seed=0                      # seed of the speaker split (local/data.sh gets it too)
data_args=""                # extra arguments of local/data.sh
split=random                # stage 1: random (speaker-independent split of data/all) | predefined (the
                            # ${train_set} ${valid_set} ${test_sets} that local/data.sh wrote are used as they are)
split_args="--dev 0.1 --test 0.1"   # split=random: speakers for dev/test: fractions or counts
folds=""                    # cross-validation: K (speaker-group folds of data/all, stratified, made here) |
                            # listed (data/fold<k>/{train,dev,test} written by local/data.sh); empty = one split
fold_args="--dev 0.1"       # folds=K: dev speakers of each fold (fraction of its non-test speakers or count)
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
backbones=""                # stages 4-6: several backbones in turn ("cnn lstm qformer transformer"): methods x backbones
backbone_train_args=""      # stage 4: config overrides per backbone, "<backbone>: <args>; <backbone>: <args>" (e.g.
                            # "transformer: --optim.lr 3e-4 --scheduler.warmup_steps 200"); train_args come after them
methods=""                  # stages 4-6: methods run in turn, conf/train_<m>.yaml -> exp/[<exp_tag>/]<m> (e.g.
                            # "egemaps_svm ce parameta"); empty = ${train_config} only (-> exp/<exp_tag or config name>)
egemaps_args=""             # method egemaps_svm: extra arguments of parastyle.bin.egemaps_svm train (e.g. "--set classifier=logreg")
eval_parameta_args=""       # stage 6: extra arguments of parastyle.bin.eval_parameta (e.g. --max_tsne 500)

. utils/parse_options.sh
. ./path.sh
if [ -f ./cmd.sh ]; then . ./cmd.sh; fi

first_test=${test_sets%% *}
all_sets="${train_set} ${valid_set} ${test_sets}"

case "${split}" in random|true) split=random ;; predefined|false) split=predefined ;;
    *) log "error: split must be random or predefined, got '${split}'"; exit 1 ;; esac
if [ -n "${folds}" ] && [ "${folds}" != listed ] && ! [[ "${folds}" =~ ^[0-9]+$ ]]; then
    log "error: folds must be a number of folds or 'listed', got '${folds}'"; exit 1
fi

if [ ${stage} -le 0 ] && [ ${stop_stage} -ge 0 ]; then
    log "stage 0: data preparation (local/data.sh) -> data/all, ${lang_dir}"
    # shellcheck disable=SC2086
    local/data.sh --nj "${nj}" --seed "${seed}" ${data_args}
    python -m parastyle.bin.validate_data_dir --no-feats --lang_dir "${lang_dir}" data/all
fi

if [ ${stage} -le 1 ] && [ ${stop_stage} -ge 1 ]; then
    if [ -n "${folds}" ] && [ "${folds}" != listed ]; then
        log "stage 1: ${folds} speaker-group cross-validation folds of data/all -> data/fold<k>/{train,dev,test}"
        for d in data/fold*; do [ -d "${d}" ] && rm -rf "${d}"; done
        # shellcheck disable=SC2086
        python -m parastyle.bin.make_folds --folds "${folds}" --seed "${seed}" ${fold_args} \
            --report data/folds_report.txt data/all data
    elif [ "${folds}" = listed ]; then
        log "stage 1: folds listed by local/data.sh (data/fold<k>/{train,dev,test}): checked for speaker leaks"
        python -m parastyle.bin.make_folds --check data
    elif [ "${split}" = predefined ]; then
        log "stage 1: split=predefined: using ${train_set} ${valid_set} ${test_sets} as local/data.sh wrote them"
        for s in ${all_sets}; do
            [ -f "data/${s}/utt2spk" ] || { log "error: split=predefined but data/${s}/utt2spk does not exist (local/data.sh must write it)"; exit 1; }
        done
    else
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
fi

# the folds (empty: one split); every later stage runs once per fold
fold_list=""
if [ -n "${folds}" ] && [ ${stop_stage} -ge 2 ]; then
    fold_list=$(python -m parastyle.bin.make_folds --check data)
    if [ "${folds}" != listed ] && [ "$(echo ${fold_list} | wc -w)" -ne "${folds}" ]; then
        log "error: folds=${folds} but data/ holds the folds: ${fold_list} (rerun stage 1)"; exit 1
    fi
    if [ "${train_set} ${valid_set} ${test_sets}" != "train dev test" ]; then
        log "error: with folds, each fold's sets are fold<k>/{train,dev,test}; leave train_set, valid_set, test_sets at their defaults"; exit 1
    fi
fi
sets_of_fold() {  # the sets of fold $1 ("" = no folds), as paths below data/
    local p=${1:+$1/}
    local out="${p}${train_set} ${p}${valid_set}"
    for t in ${test_sets}; do out="${out} ${p}${t}"; done
    echo "${out}"
}

if [ ${stage} -le 2 ] && [ ${stop_stage} -ge 2 ]; then
    if [ -n "${folds}" ]; then
        log "stage 2: feature extraction (${feats_conf}) of data/all, shared by the sets of: ${fold_list}"
        python -m parastyle.bin.extract_feats --data data/all --conf "${feats_conf}" --dump "${dumpdir}/all" --nj "${nj}"
        python -m parastyle.bin.make_folds --attach_feats data/all data
    else
        log "stage 2: feature extraction (${feats_conf}) for: ${all_sets}"
        for s in ${all_sets}; do
            python -m parastyle.bin.extract_feats --data "data/${s}" --conf "${feats_conf}" \
                --dump "${dumpdir}/${s}" --nj "${nj}"
        done
    fi
fi

if [ ${stage} -le 3 ] && [ ${stop_stage} -ge 3 ]; then
    for fold in ${fold_list:-""}; do
        sets=$(sets_of_fold "${fold}")
        tr=${fold:+${fold}/}${train_set}
        log "stage 3: global CMVN of ${tr} and validation of: ${sets}"
        python -m parastyle.bin.compute_cmvn --data "data/${tr}"
        for s in ${sets}; do
            python -m parastyle.bin.validate_data_dir --lang_dir "${lang_dir}" "data/${s}"
        done
    done
fi

# ==== training and scoring stages (4+) ====

train_ngpu=${train_ngpu:-${ngpu:-0}}
backbones=${backbones:-${backbone}}
if [ -n "${methods}" ]; then
    runs=${methods}
else
    runs=config:${train_config}
fi
# ---- stages 4-6 run once per fold x method x backbone ----
for fold in ${fold_list:-""}; do
tr=${fold:+${fold}/}${train_set}
va=${fold:+${fold}/}${valid_set}
fold_score_sets=""
for s in ${score_sets:-${valid_set} ${test_sets}}; do fold_score_sets="${fold_score_sets} ${fold:+${fold}/}${s}"; done
for run in ${runs}; do
if [ "${run#config:}" != "${run}" ]; then
    train_config=${run#config:}
    method=$(basename "${train_config}" .yaml | sed 's/^train_//')
    base=${exp_tag:-${method}}
else
    method=${run}
    train_config=conf/train_${method}.yaml
    base=${exp_tag:+${exp_tag}/}${method}
fi
run_backbones=${backbones:-""}
[ "${method}" = egemaps_svm ] && run_backbones=""   # a fixed feature set: no encoder to swap
for bb in ${run_backbones:-""}; do
tag=${base}${bb:+_${bb}}
expdir=exp/${tag}${fold:+/${fold}}
backbone_args=""
if [ -n "${bb}" ]; then
    backbone_args="--model.encoder {\"name\":\"${bb}\"}"
    IFS=';' read -ra bb_entries <<< "${backbone_train_args}"
    for entry in "${bb_entries[@]}"; do
        case "${entry}" in
            *:*) entry_bb=${entry%%:*}; entry_bb=${entry_bb//[[:space:]]/}
                 [ "${entry_bb}" = "${bb}" ] && backbone_args="${backbone_args} ${entry#*:}" ;;
            *[![:space:]]*) log "error: backbone_train_args entry '${entry}' is not '<backbone>: <args>'"; exit 1 ;;
        esac
    done
fi

if [ "${method}" = egemaps_svm ]; then
    egemaps_conf=""
    [ -f "${train_config}" ] && egemaps_conf="--config ${train_config}"
    if [ ${stage} -le 4 ] && [ ${stop_stage} -ge 4 ]; then
        log "stage 4: eGeMAPS + linear classifier on ${tr} (C chosen on ${va}) -> ${expdir}"
        # shellcheck disable=SC2086
        python -m parastyle.bin.egemaps_svm train --train_data "data/${tr}" --valid_data "data/${va}" \
            --lang_dir "${lang_dir}" --exp "${expdir}" --cache "${dumpdir}/egemaps" --nj "${nj}" \
            ${egemaps_conf} ${egemaps_args}
    fi
    if [ ${stage} -le 5 ] && [ ${stop_stage} -ge 5 ]; then
        log "stage 5: scoring ${expdir} on:${fold_score_sets} -> ${expdir}/decode_<set>, ${results_md}"
        for s in ${fold_score_sets}; do
            python -m parastyle.bin.egemaps_svm score --exp "${expdir}" --data "data/${s}" \
                --results_md "${results_md}" --tag "${tag}" --cache "${dumpdir}/egemaps" --nj "${nj}"
        done
    fi
    continue
fi

if [ ${stage} -le 4 ] && [ ${stop_stage} -ge 4 ]; then
    [ -f "${train_config}" ] || { log "error: method ${method}: ${train_config} not found"; exit 1; }
    log "stage 4: training ${train_config} on ${tr} (valid ${va}) -> ${expdir}"
    launcher="python -m parastyle.bin.train"
    if [ "${train_ngpu}" -gt 1 ]; then
        launcher="torchrun --standalone --nproc_per_node ${train_ngpu} -m parastyle.bin.train"
    fi
    # resumes from the newest good checkpoint of ${expdir}; a finished exp (done) is left as it is
    # when it was trained on the same data and config (the trainer checks its identity)
    # shellcheck disable=SC2086
    ${launcher} --config "${train_config}" --train_data "data/${tr}" --valid_data "data/${va}" \
        --lang_dir "${lang_dir}" --exp "${expdir}" ${backbone_args} ${train_args}
fi

if [ ${stage} -le 5 ] && [ ${stop_stage} -ge 5 ]; then
    log "stage 5: scoring ${expdir} on:${fold_score_sets} -> ${expdir}/decode_<set>, ${results_md}"
    for s in ${fold_score_sets}; do
        # shellcheck disable=SC2086
        python -m parastyle.bin.score --exp "${expdir}" --data "data/${s}" --results_md "${results_md}" \
            --tag "${tag}" ${score_args}
    done
fi

if [ ${stage} -le 6 ] && [ ${stop_stage} -ge 6 ]; then
    model_name=$(python -c 'import sys, yaml; print(yaml.safe_load(open(sys.argv[1]))["model"]["name"])' "${expdir}/config.yaml")
    if [ "${model_name}" = parameta ]; then
        log "stage 6: ParaMETA evaluation of ${expdir} (t-SNE, leakage, manipulation, text prompts) on:${fold_score_sets}"
        for s in ${fold_score_sets}; do
            # shellcheck disable=SC2086
            python -m parastyle.bin.eval_parameta --exp "${expdir}" --train_data "data/${tr}" --data "data/${s}" \
                --results_md "${results_md}" ${eval_parameta_args}
        done
    else
        log "stage 6: ${expdir} is a ${model_name} model, not ParaMETA: no ParaMETA evaluation"
    fi
fi
done  # backbones
done  # methods
done  # folds

log "finished stages ${stage}-${stop_stage}"
