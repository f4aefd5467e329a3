#!/usr/bin/env python3
"""Write the tag -> paraphrases JSON used by the tag BCE loss for a tag vocabulary.

    local/make_tag_paraphrases.py data/lang/intrinsic_tags.txt data/lang/tag_paraphrases.json
    local/make_tag_paraphrases.py --from conf/tag_paraphrases.json data/lang/intrinsic_tags.txt \\
        data/lang/tag_paraphrases.json

Keys are the tag names of the vocabulary (as in ``utt2tags``: one token, whitespace -> ``_`` by
``prepare_paraspeechcaps.norm_tag``), in vocabulary order.

Without ``--from``, each tag gets six captions from fixed sentence patterns (``_`` in a tag is read
as a space). ParaSpeechCLAP used six paraphrases per tag written by a language model; a hand-written
file with the same layout (``{"<tag>": ["...", ...]}``) is given with ``--from`` (local/data.sh does
so for conf/tag_paraphrases.json): its keys are normalised with the same ``norm_tag`` (so
``"fast talking"`` and ``"fast_talking"`` both name the tag ``fast_talking``), every vocabulary
tag must have paraphrases (else an error names the missing ones), and keys that are not in the
vocabulary are left out with a warning naming them.
"""
import argparse
import json
import sys
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parent))

from parastyle.fileio import DataError, atomic_write, read_list  # noqa: E402
from prepare_paraspeechcaps import norm_tag  # noqa: E402

PATTERNS = [
    "A person is speaking in a {t} style.",
    "The speaker's voice sounds {t}.",
    "Someone talks with a {t} quality to their speech.",
    "This is {t} speech.",
    "The way this person speaks can be described as {t}.",
    "A {t} voice.",
]


def pattern_paraphrases(tags):
    return {t: [p.format(t=t.replace("_", " ")) for p in PATTERNS] for t in tags}


def paraphrases_from_file(path: Path, tags):
    """``{tag: paraphrases}`` for every tag of ``tags`` from a hand-written JSON (keys normalised)."""
    try:
        data = json.loads(path.read_text(encoding="utf-8"))
    except OSError as e:
        raise DataError(f"{path}: cannot read ({e})") from None
    except json.JSONDecodeError as e:
        raise DataError(f"{path}:{e.lineno}: invalid JSON ({e.msg})") from None
    if not isinstance(data, dict):
        raise DataError(f"{path}: expected a JSON object {{tag: [paraphrases]}}")
    norm = {}
    for key, items in data.items():
        t = norm_tag(key)
        if t in norm:
            raise DataError(f"{path}: keys {norm[t][0]!r} and {key!r} both name the tag {t!r}")
        if not isinstance(items, list) or not items or not all(isinstance(s, str) and s.strip() for s in items):
            raise DataError(f"{path}: tag {key!r} must map to a non-empty list of non-empty strings")
        norm[t] = (key, items)
    missing = [t for t in tags if t not in norm]
    if missing:
        raise DataError(f"{path}: no paraphrases for {len(missing)} tag(s) of the vocabulary: {missing}")
    extra = sorted(k for t, (k, _) in norm.items() if t not in set(tags))
    if extra:
        print(f"make_tag_paraphrases.py: {path}: {len(extra)} key(s) not in the tag vocabulary left out: {extra}",
              file=sys.stderr)
    return {t: list(norm[t][1]) for t in tags}


def main(argv):
    ap = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    ap.add_argument("--from", dest="source", default=None, help="hand-written JSON {tag: [paraphrases]}")
    ap.add_argument("vocab", help="tag vocabulary, one tag a line (data/lang/intrinsic_tags.txt)")
    ap.add_argument("out", help="output JSON")
    args = ap.parse_args(argv)
    try:
        tags = read_list(args.vocab)
        bad = [t for t in tags if t != norm_tag(t)]
        if bad:
            raise DataError(f"{args.vocab}: tags {bad} are not single tokens (write the vocabulary with "
                            f"local/prepare_paraspeechcaps.py)")
        data = paraphrases_from_file(Path(args.source), tags) if args.source else pattern_paraphrases(tags)
    except DataError as e:
        print(f"make_tag_paraphrases.py: {e}", file=sys.stderr)
        return 1
    with atomic_write(Path(args.out)) as f:
        json.dump(data, f, indent=1, ensure_ascii=False)
        f.write("\n")
    return 0


if __name__ == "__main__":
    sys.exit(main(sys.argv[1:]))
