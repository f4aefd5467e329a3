#!/usr/bin/env bash
# Sort a data directory's files and drop utterances missing from a required file, printing
# how many were dropped per reason; spk2utt is regenerated. Rewrites <data-dir> in place
# (previous files in <data-dir>/.backup) unless <out-dir> is given.
#   utils/fix_data_dir.sh <data-dir> [<out-dir>]
exec python -m parastyle.bin.fix_data_dir "$@"
