#!/usr/bin/env bash
# Write a consistent subset of a data directory.
#   utils/subset_data_dir.sh --utt-list <file> <src> <dst>
#   utils/subset_data_dir.sh --spk-list <file> <src> <dst>
#   utils/subset_data_dir.sh [--first N | --last N | --random N] [--per-spk] [--seed S] <src> <dst>
#   utils/subset_data_dir.sh [--per-spk] [--seed S] <src> <num-utt> <dst>    (random N)
exec python -m parastyle.bin.subset_data_dir "$@"
