#!/usr/bin/env bash
# Data preparation of ParaMETA's training mix (stage 0): runs the data prep of each corpus
# recipe (egs/<corpus>/style1/local/data.sh) into data/local/<corpus>/ (the corpus's own labels),
# maps each onto ParaMETA's label sets with the corpus's local/label_map.yaml, and combines them
# into ${data_dir}.
set -euo pipefail

cremad=             # CREMA-D root (AudioWAV/, VideoDemographics.csv)
esd=                # ESD root (speaker folders 0001/ ... 0020/)
ljspeech=           # LJSpeech-1.1 root (metadata.csv, wavs/)
baker=              # Baker CSMSC / BZNSYP root (Wave/, ProsodyLabeling/)
corpora=cremad,esd,ljspeech,baker   # comma-separated corpora to mix
ljspeech_assume_neutral_adult=true    # label LJSpeech neutral + adult (see egs/ljspeech/style1/local/README.md)
data_dir=data/all   # output: the combined data dir
lang_dir=data/lang  # output: label vocabularies
local_dir=data/local  # per-corpus data dirs
nj=1                # accepted from style.sh; the data prep runs as one job
seed=0              # accepted from style.sh; the data prep is deterministic

. utils/parse_options.sh

corpora=${corpora//,/ }

missing=""
for corpus in ${corpora}; do
  case ${corpus} in cremad|esd|ljspeech|baker) ;;
    *) echo "local/data.sh: unknown corpus '${corpus}' in --corpora (known: cremad,esd,ljspeech,baker)" >&2; exit 1 ;;
  esac
  [ -n "${!corpus}" ] || missing="${missing} ${corpus}"
done
if [ -n "${missing}" ]; then
  echo "local/data.sh: no path set for:${missing}." >&2
  for corpus in ${missing}; do
    case ${corpus} in
      cremad) where="https://github.com/CheyneyComputerScience/CREMA-D (git lfs)" ;;
      esd) where="https://github.com/HLTSingapore/Emotional-Speech-Data (licence form)" ;;
      ljspeech) where="https://keithito.com/LJ-Speech-Dataset/" ;;
      baker) where="https://www.data-baker.com/open_source.html (BZNSYP)" ;;
    esac
    echo "  --${corpus} <dir>: obtain it from ${where}; layout in egs/${corpus}/style1/local/README.md" >&2
  done
  echo "  Set the variables in run.sh or pass them as options (or choose corpora with --corpora, e.g. --corpora esd,baker)." >&2
  exit 1
fi

egs=$(cd ../.. && pwd)
mkdir -p "${local_dir}"
local_abs=$(cd "${local_dir}" && pwd)
srcs=()
for corpus in ${corpora}; do
  corpus_path=$(cd "${!corpus}" 2>/dev/null && pwd) || {
    echo "local/data.sh: ${corpus}='${!corpus}' is not a directory" >&2; exit 1; }
  extra=()
  [ "${corpus}" = ljspeech ] && extra=(--assume_neutral_adult "${ljspeech_assume_neutral_adult}")
  echo "local/data.sh: --- ${corpus} ---"
  (cd "${egs}/${corpus}/style1" && \
    bash local/data.sh --"${corpus}" "${corpus_path}" --data_dir "${local_abs}/${corpus}/all" \
      --lang_dir "${local_abs}/${corpus}/lang" "${extra[@]}")
  srcs+=("${local_dir}/${corpus}/all")
done

# Corpora combine by label name: each corpus's labels are mapped onto ParaMETA's label sets
# (local/label_sets.yaml) by its own egs/<corpus>/style1/local/label_map.yaml, with a report of
# the counts per mapped / unknown / kept label; a label outside the sets is an error.
mapped=()
for corpus in ${corpora}; do
  map_arg=()
  [ -f "${egs}/${corpus}/style1/local/label_map.yaml" ] && map_arg=(--map "${egs}/${corpus}/style1/local/label_map.yaml")
  echo "local/data.sh: --- ${corpus}: labels onto local/label_sets.yaml ---"
  python -m parastyle.bin.apply_label_map "${map_arg[@]}" --src_lang "${local_dir}/${corpus}/lang" \
    --target local/label_sets.yaml --target_lang "${lang_dir}" --recaption --report "${local_dir}/${corpus}/label_map_report.txt" \
    "${local_dir}/${corpus}/all" "${local_dir}/${corpus}/mapped"
  mapped+=("${local_dir}/${corpus}/mapped")
done
srcs=("${mapped[@]}")

tmp=${data_dir}.tmp
rm -rf "${tmp}"
utils/combine_data.sh "${tmp}" "${srcs[@]}"
utils/validate_data_dir.sh --no-feats --lang-dir "${lang_dir}" "${tmp}"
rm -rf "${data_dir}"
mv "${tmp}" "${data_dir}"
echo "local/data.sh: $(wc -l < "${data_dir}/utt2spk") utterances from:${corpora:+ }${corpora} in ${data_dir}"
