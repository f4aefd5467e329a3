#!/usr/bin/env bash
# Two-stage VIB disentanglement (textual vs acoustic latents), shared by every egs/<corpus>/vib1
# recipe. Called by run.sh; every variable below is overridable as --name value. A stage's
# outputs are written under a temporary name and renamed at its end.
#
#   0 data preparation        local/data.sh -> data/all + ${lang_dir} (or the sets directly)
#   1 split                   speaker-independent train/dev/test; closed-set spk_train/spk_dev/spk_test
#   2 features                feats.scp of every set: SSL layers when ssl_dump is set (configs with
#                             frontend {type: dumped}), else feats_conf features; skipped when both are
#                             empty (on-the-fly / raw)
#   3 CMVN, tokens, checks    global CMVN, ${lang_dir}/tokens.txt from the stage-1 training text
#   4 stage-1 training        textual VIB (CTC + beta KL) -> exp/${stage1_tag}
#   5 stage-1 scoring         CER / WER
#   6 stage-2 training        acoustic VIB per target (CE + beta KL), stage 1 frozen -> exp/${stage2_prefix}_<target>
#   7 stage-2 scoring         accuracy / UAR per target
#   8 probing                 linear probes of z_textual, z_acoustic, original; layer weights; t-SNE
#   9 attribution             stage-2 attention weights over frames (JSON + PNGs)
set -euo pipefail

log() { echo "$(date '+%Y-%m-%dT%H:%M:%S') ($(basename "$0"):${BASH_LINENO[0]}) $*" >&2; }

stage=0
stop_stage=100
nj=2
seed=0
data_args=""                # extra arguments of local/data.sh
split=true                  # stage 1: false when local/data.sh writes the sets itself
split_args="--dev 0.1 --test 0.2"        # speaker-independent split of data/all (fractions or counts of speakers)
spk_split_args=""           # closed-set split per utterance within speakers (e.g. "--dev 0.1 --test 0.2"); empty = none
train_set=train
valid_set=dev
test_sets="test"
spk_prefix=spk              # closed-set sets: ${spk_prefix}_train, ${spk_prefix}_dev, ${spk_prefix}_test
lang_dir=data/lang
feats_conf=conf/feats.yaml  # empty: no stage-2 feature extraction (configs use data.frontend)
dumpdir=dump
ssl_dump=""                 # SSL model (torchaudio state-dict file, save_ssl_model file or HF checkpoint dir): stage 2
                            # dumps its layers of every set to data/<set>/feats.scp instead of feats_conf
                            # features, for configs with model.frontend {type: dumped, num_layers: L}, data.feats true
ssl_dump_arch=""            # torchaudio bundle name when ssl_dump is a bare state-dict file, e.g. HUBERT_LARGE
ssl_dump_layers=all         # 1-based transformer layers to dump: all | 6,12,18 | 1-12 (L = their number)
ssl_dump_device=auto        # auto | cpu | cuda
ssl_dump_args=""            # extra arguments of parastyle.bin.dump_ssl_layers (e.g. --compress)
token_type=char             # char | bpe
bpe_vocab_size=500
stage1_config=conf/train_stage1.yaml
stage1_train_set=""         # default ${train_set}
stage1_valid_set=""         # default ${valid_set}
stage1_tag=vib_stage1
stage1_exp=""               # a trained stage-1 exp dir from elsewhere (skips stages 4-5)
stage1_args=""
stage2_config=conf/train_stage2.yaml
stage2_targets="emotion speaker"   # factors (speaker-independent sets) or "speaker" (closed-set sets)
stage2_prefix=vib_stage2
stage2_args=""
probe_args="--ctc_epochs 30"
attribution_plots=8
results_md=RESULTS.md

. utils/parse_options.sh
. ./path.sh
if [ -f ./cmd.sh ]; then . ./cmd.sh; fi

stage1_train_set=${stage1_train_set:-${train_set}}
stage1_valid_set=${stage1_valid_set:-${valid_set}}
all_sets="${train_set} ${valid_set} ${test_sets}"
[ -n "${spk_split_args}" ] && all_sets="${all_sets} ${spk_prefix}_train ${spk_prefix}_dev ${spk_prefix}_test"
for s in ${stage1_train_set} ${stage1_valid_set}; do
    case " ${all_sets} " in *" ${s} "*) ;; *) all_sets="${all_sets} ${s}";; esac
done
first_test=${test_sets%% *}
if [ -n "${ssl_dump}" ] && [ -n "${feats_conf}" ]; then
    log "ssl_dump is set: the features are the dumped SSL layers, feats_conf ${feats_conf} is not used"
    feats_conf=""
fi
s1_exp=${stage1_exp:-exp/${stage1_tag}}

# sets of a stage-2 target: speaker id is closed-set, every other factor speaker-independent
sets_of() {
    if [ "$1" = speaker ]; then echo "${spk_prefix}_train ${spk_prefix}_dev ${spk_prefix}_test"
    else echo "${train_set} ${valid_set} ${first_test}"; fi
}

if [ ${stage} -le 0 ] && [ ${stop_stage} -ge 0 ]; then
    log "stage 0: data preparation (local/data.sh)"
    # shellcheck disable=SC2086
    local/data.sh --nj "${nj}" --seed "${seed}" ${data_args}
fi

if [ ${stage} -le 1 ] && [ ${stop_stage} -ge 1 ]; then
    if ${split}; then
        log "stage 1: speaker-independent split of data/all into ${train_set}/${valid_set}/${first_test}"
        tmp=data/.split.tmp
        rm -rf "${tmp}"
        # shellcheck disable=SC2086
        python -m parastyle.bin.split_train_dev_test --seed "${seed}" ${split_args} \
            --report "${tmp}/split_report.txt" data/all "${tmp}/${train_set}" "${tmp}/${valid_set}" "${tmp}/${first_test}"
        for s in ${train_set} ${valid_set} ${first_test}; do rm -rf "data/${s}"; mv "${tmp}/${s}" "data/${s}"; done
        mv "${tmp}/split_report.txt" data/split_report.txt
        rmdir "${tmp}"
    fi
    if [ -n "${spk_split_args}" ]; then
        log "stage 1: closed-set split (per utterance within speakers) into ${spk_prefix}_{train,dev,test}"
        tmp=data/.spksplit.tmp
        rm -rf "${tmp}"
        # shellcheck disable=SC2086
        python -m parastyle.bin.split_within_speakers --seed "${seed}" ${spk_split_args} \
            data/all "${tmp}/train" "${tmp}/dev" "${tmp}/test"
        for s in train dev test; do rm -rf "data/${spk_prefix}_${s}"; mv "${tmp}/${s}" "data/${spk_prefix}_${s}"; done
        rmdir "${tmp}"
    fi
fi

if [ ${stage} -le 2 ] && [ ${stop_stage} -ge 2 ]; then
    if [ -n "${ssl_dump}" ]; then
        log "stage 2: SSL layers (${ssl_dump_layers}) of ${ssl_dump} dumped for: ${all_sets}"
        for s in ${all_sets}; do
            # shellcheck disable=SC2086
            python -m parastyle.bin.dump_ssl_layers --data "data/${s}" --ssl_path "${ssl_dump}" \
                ${ssl_dump_arch:+--arch "${ssl_dump_arch}"} --dump "${dumpdir}/ssl/${s}" \
                --layers "${ssl_dump_layers}" --device "${ssl_dump_device}" ${ssl_dump_args}
        done
    elif [ -n "${feats_conf}" ]; then
        log "stage 2: feature extraction (${feats_conf}) for: ${all_sets}"
        for s in ${all_sets}; do
            python -m parastyle.bin.extract_feats --data "data/${s}" --conf "${feats_conf}" \
                --dump "${dumpdir}/${s}" --nj "${nj}"
        done
    else
        log "stage 2: no feats_conf or ssl_dump: features are computed on the fly (data.frontend of the configs)"
    fi
fi

if [ ${stage} -le 3 ] && [ ${stop_stage} -ge 3 ]; then
    log "stage 3: CMVN, token list (${token_type}) from data/${stage1_train_set}/text, data checks"
    if [ -n "${feats_conf}" ]; then
        for s in ${train_set} ${stage1_train_set}; do
            [ -f "data/${s}/cmvn.ark" ] || python -m parastyle.bin.compute_cmvn --data "data/${s}"
        done
    fi
    if [ -z "${stage1_exp}" ]; then
        python -m parastyle.bin.make_tokens --text "data/${stage1_train_set}/text" --lang_dir "${lang_dir}" \
            --token_type "${token_type}" --vocab_size "${bpe_vocab_size}"
    fi
    no_feats=$([ -z "${feats_conf}" ] && [ -z "${ssl_dump}" ] && echo --no-feats || true)
    for s in ${all_sets}; do
        # shellcheck disable=SC2086
        python -m parastyle.bin.validate_data_dir ${no_feats} --lang_dir "${lang_dir}" "data/${s}"
    done
fi

if [ -z "${stage1_exp}" ] && [ ${stage} -le 4 ] && [ ${stop_stage} -ge 4 ]; then
    log "stage 4: stage-1 (textual VIB) training ${stage1_config} on ${stage1_train_set} -> ${s1_exp}"
    # shellcheck disable=SC2086
    python -m parastyle.bin.train --config "${stage1_config}" --train_data "data/${stage1_train_set}" \
        --valid_data "data/${stage1_valid_set}" --lang_dir "${lang_dir}" --exp "${s1_exp}" \
        --model.token_list "${lang_dir}/tokens.txt" --model.token_type "${token_type}" \
        $([ "${token_type}" = bpe ] && echo "--model.bpemodel ${lang_dir}/bpe.model") ${stage1_args}
fi

if [ -z "${stage1_exp}" ] && [ ${stage} -le 5 ] && [ ${stop_stage} -ge 5 ]; then
    log "stage 5: stage-1 scoring (CER / WER) of ${s1_exp} on ${stage1_valid_set} ${test_sets}"
    for s in ${stage1_valid_set} ${test_sets}; do
        python -m parastyle.bin.score_vib --exp "${s1_exp}" --data "data/${s}" --results_md "${results_md}"
    done
fi

if [ ${stage} -le 6 ] && [ ${stop_stage} -ge 6 ]; then
    # the frozen stage-1 model sees features normalised as in its own training
    cmvn_opt=""
    if [ -n "${feats_conf}" ] && [ -z "${stage1_exp}" ]; then cmvn_opt="--data.cmvn data/${stage1_train_set}/cmvn.ark"; fi
    for t in ${stage2_targets}; do
        read -r tr dv _ <<< "$(sets_of "${t}")"
        log "stage 6: stage-2 (acoustic VIB) training for ${t} on ${tr} (valid ${dv}) -> exp/${stage2_prefix}_${t}"
        # shellcheck disable=SC2086
        python -m parastyle.bin.train --config "${stage2_config}" --train_data "data/${tr}" --valid_data "data/${dv}" \
            --lang_dir "${lang_dir}" --exp "exp/${stage2_prefix}_${t}" \
            --model.target "${t}" --model.stage1_exp "${s1_exp}" ${cmvn_opt} ${stage2_args}
    done
fi

if [ ${stage} -le 7 ] && [ ${stop_stage} -ge 7 ]; then
    for t in ${stage2_targets}; do
        read -r _ dv te <<< "$(sets_of "${t}")"
        log "stage 7: stage-2 scoring of exp/${stage2_prefix}_${t} on ${dv} ${te}"
        for s in ${dv} ${te}; do
            python -m parastyle.bin.score_vib --exp "exp/${stage2_prefix}_${t}" --data "data/${s}" \
                --results_md "${results_md}" --tag "${stage2_prefix}_${t}"
        done
    done
fi

if [ ${stage} -le 8 ] && [ ${stop_stage} -ge 8 ]; then
    spk_opts=""
    [ -n "${spk_split_args}" ] && spk_opts="--speaker_train_data data/${spk_prefix}_train --speaker_test_data data/${spk_prefix}_test"
    for t in ${stage2_targets}; do
        log "stage 8: probing exp/${stage2_prefix}_${t} (train ${train_set}, test ${first_test})"
        # shellcheck disable=SC2086
        python -m parastyle.bin.vib_probe --exp "exp/${stage2_prefix}_${t}" --train_data "data/${train_set}" \
            --test_data "data/${first_test}" --lang_dir "${lang_dir}" ${spk_opts} --results_md "${results_md}" \
            --tag "${stage2_prefix}_${t}" ${probe_args}
    done
fi

if [ ${stage} -le 9 ] && [ ${stop_stage} -ge 9 ]; then
    for t in ${stage2_targets}; do
        read -r _ _ te <<< "$(sets_of "${t}")"
        log "stage 9: attention attribution of exp/${stage2_prefix}_${t} on ${te}"
        python -m parastyle.bin.vib_attribution --exp "exp/${stage2_prefix}_${t}" --data "data/${te}" \
            --num_plots "${attribution_plots}"
    done
fi

log "finished stages ${stage}-${stop_stage}"
