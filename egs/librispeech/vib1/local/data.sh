#!/usr/bin/env bash
# Data preparation of LibriSpeech (stage 0): one Kaldi dir per subset (data/<set>) and
# data/lang/gender.txt. Layout: local/README.md. Each set is built under <set>.tmp and renamed.
set -euo pipefail

librispeech=        # the LibriSpeech directory: holds SPEAKERS.TXT, train-clean-100/, dev-clean/, ...
sets="train-clean-100:train dev-clean:dev test-clean:test_clean test-other:test_other"   # <subset>:<data dir name>
lang_dir=data/lang
nj=1                # accepted from vib.sh; the data prep runs as one job
seed=0              # accepted from vib.sh; the data prep is deterministic

. utils/parse_options.sh

if [ -z "${librispeech}" ] || [ ! -f "${librispeech}/SPEAKERS.TXT" ]; then
  cat >&2 <<MSG
local/data.sh: LibriSpeech not found (librispeech='${librispeech}': expected SPEAKERS.TXT there).
  Download the subsets from https://www.openslr.org/12 (train-clean-100.tar.gz, dev-clean.tar.gz,
  test-clean.tar.gz, test-other.tar.gz), unpack them into one directory (they all extract into
  LibriSpeech/), then pass --librispeech /path/to/LibriSpeech.
MSG
  exit 1
fi

for pair in ${sets}; do
  subset=${pair%%:*}; name=${pair##*:}
  tmp=data/${name}.tmp
  rm -rf "${tmp}"
  python local/prepare_librispeech.py --root "${librispeech}" --subset "${subset}" --out "${tmp}" --lang "${lang_dir}"
  python -m parastyle.bin.validate_data_dir --no-feats --lang_dir "${lang_dir}" "${tmp}"
  rm -rf "data/${name}"
  mv "${tmp}" "data/${name}"
done
