"""Map a data dir's labels onto a shared label set with a corpus's ``local/label_map.yaml``.

    python -m parastyle.bin.apply_label_map [--map local/label_map.yaml] [--src_lang data/lang] \\
        [--target label_sets.yaml] [--target_lang data/lang_mix] [--recaption] [--report map_report.txt] \\
        data/all data/all_mapped

Without ``--map`` the labels are kept (and checked against ``--target``). Labels mapped to null
become unknown; the counts per mapped / unknown / kept label are printed (and written to
``--report``). ``--target_lang`` receives the target vocabularies. See parastyle/data/label_map.py.
"""
from __future__ import annotations

import argparse
import sys

from parastyle.data.label_map import apply_label_map, load_label_map, load_label_sets, write_report, write_vocabularies
from parastyle.fileio import DataError


def main(argv=None) -> int:
    p = argparse.ArgumentParser(prog="apply_label_map", description=__doc__,
                                formatter_class=argparse.RawDescriptionHelpFormatter)
    p.add_argument("--map", default=None, help="label_map.yaml (optional)")
    p.add_argument("--src_lang", default=None, help="the corpus's vocabularies (checks the map's source labels)")
    p.add_argument("--target", default=None, help="YAML {factor: [labels]} every mapped label must belong to")
    p.add_argument("--target_lang", default=None, help="write the target vocabularies here")
    p.add_argument("--recaption", action="store_true", help="regenerate utt2caption from the mapped labels")
    p.add_argument("--report", default=None)
    p.add_argument("src")
    p.add_argument("dst")
    args = p.parse_args(argv)
    try:
        label_map = load_label_map(args.map) if args.map else {}
        target = load_label_sets(args.target) if args.target else None
        report = apply_label_map(args.src, args.dst, label_map, src_lang=args.src_lang, target=target,
                                 recaption=args.recaption, where=args.map or "a label map")
        if args.target_lang:
            if target is None:
                raise DataError("--target_lang needs --target")
            write_vocabularies(args.target_lang, target)
    except DataError as e:
        print(f"apply_label_map: error: {e}", file=sys.stderr)
        return 1
    print(f"{args.src} -> {args.dst}" + (f" with {args.map}" if args.map else " (no label map)"))
    print(report.text())
    if args.report:
        write_report(report, args.report)
    return 0


if __name__ == "__main__":
    sys.exit(main())
