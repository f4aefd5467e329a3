#!/usr/bin/env python3
"""Write the tag -> paraphrases JSON used by the tag BCE loss from a tag vocabulary.

    local/make_tag_paraphrases.py data/lang/intrinsic_tags.txt data/lang/tag_paraphrases.json

Each tag gets six captions from fixed sentence patterns (``_`` in a tag is read as a space).
ParaSpeechCLAP used six paraphrases per tag written by a language model; a hand-written file
with the same layout (``{"<tag>": ["...", ...]}``) can replace this one (conf/tag_paraphrases.json
is copied instead when it exists, see local/data.sh).
"""
import json
import sys
from pathlib import Path

from parastyle.fileio import atomic_write, read_list

PATTERNS = [
    "A person is speaking in a {t} style.",
    "The speaker's voice sounds {t}.",
    "Someone talks with a {t} quality to their speech.",
    "This is {t} speech.",
    "The way this person speaks can be described as {t}.",
    "A {t} voice.",
]


def main(argv):
    if len(argv) != 2:
        print(__doc__, file=sys.stderr)
        return 2
    tags = read_list(argv[0])
    data = {t: [p.format(t=t.replace("_", " ")) for p in PATTERNS] for t in tags}
    with atomic_write(Path(argv[1])) as f:
        json.dump(data, f, indent=1, ensure_ascii=False)
        f.write("\n")
    return 0


if __name__ == "__main__":
    sys.exit(main(sys.argv[1:]))
