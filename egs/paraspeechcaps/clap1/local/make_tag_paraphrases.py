#!/usr/bin/env python3
"""Write the tag -> paraphrases JSON used by the tag BCE loss for a tag vocabulary.

    local/make_tag_paraphrases.py data/lang/intrinsic_tags.txt data/lang/tag_paraphrases.json
    local/make_tag_paraphrases.py --from conf/tag_paraphrases.json data/lang/intrinsic_tags.txt \\
        data/lang/tag_paraphrases.json

Keys are the tag names of the vocabulary (as in ``utt2tags``: one token, whitespace -> ``_`` by
``prepare_paraspeechcaps.norm_tag``), in vocabulary order.

Without ``--from``, each tag gets its six synonym paraphrases from :data:`SYNONYMS` (ParaSpeechCLAP
draws one of six paraphrases of each tag per training step; the paper had them written by a
language model, the lists here are written by hand): the 28 intrinsic tags (pitch, texture,
clarity, volume, rhythm, speed) and the 23 situational tags of the recipe. A vocabulary tag
without a list stops the script naming it (add it to :data:`SYNONYMS` or write a file for
``--from``). A hand-written file with the same layout (``{"<tag>": ["...", ...]}``) is given with
``--from`` (local/data.sh does so for conf/tag_paraphrases.json when it exists): its keys are
normalised with the same ``norm_tag`` (so ``"fast talking"`` and ``"fast_talking"`` both name the
tag ``fast_talking``), every vocabulary tag must have paraphrases (else an error names the
missing ones), and keys that are not in the vocabulary are left out with a warning naming them.
"""
import argparse
import json
import sys
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parent))

from parastyle.fileio import DataError, atomic_write, read_list  # noqa: E402
from prepare_paraspeechcaps import norm_tag  # noqa: E402

NUM_PARAPHRASES = 6

#: tag -> six synonym paraphrases (single words or short phrases, as the text tower sees a tag).
SYNONYMS = {
    # ---- intrinsic (28): pitch
    "shrill": ["piercing", "high-pitched", "screechy", "strident", "squeaky", "shrieking"],
    "nasal": ["twangy", "nasally", "pinched", "honking", "adenoidal", "through the nose"],
    "deep": ["low-pitched", "bass", "resonant", "rumbling", "low", "baritone"],
    # texture
    "silky": ["smooth", "velvety", "satiny", "mellow", "sleek", "buttery"],
    "husky": ["hoarse", "throaty", "smoky", "croaky", "rough-edged", "dusky"],
    "raspy": ["scratchy", "grating", "rough", "harsh", "strained", "wheezy"],
    "guttural": ["throaty", "growling", "from the throat", "gruff", "coarse", "grunting"],
    "vocal-fry": ["creaky", "creaky voice", "fried", "glottal fry", "crackly", "popping"],
    "breathy": ["airy", "whispery", "aspirated", "wispy", "feathery", "puffing"],
    "gravelly": ["gritty", "craggy", "rocky", "crunchy", "rugged", "weathered"],
    "sweet": ["honeyed", "dulcet", "pleasant", "gentle", "tender", "sugary"],
    # clarity
    "crisp": ["clear", "articulate", "precise", "sharp", "distinct", "clean"],
    "slurred": ["mumbled", "indistinct", "garbled", "blurred", "drunken", "mushy"],
    "lisp": ["lisping", "sibilant", "lisped", "tongue-tied", "thick-tongued", "soft s"],
    "stammering": ["stuttering", "faltering", "halting", "stumbling", "tongue-tripping", "repeating sounds"],
    # volume
    "booming": ["thunderous", "roaring", "resounding", "blaring", "sonorous", "ringing"],
    "authoritative": ["commanding", "assertive", "confident", "forceful", "imposing", "masterful"],
    "loud": ["noisy", "blaring", "forceful", "strong", "powerful", "projected"],
    "hushed": ["muted", "muffled", "subdued", "quiet", "whisper-like", "low-voiced"],
    "soft": ["gentle", "quiet", "faint", "delicate", "light", "mild"],
    # rhythm
    "singsong": ["lilting", "melodic", "musical", "tuneful", "cadenced", "chanting"],
    "pitchy": ["off-key", "wavering", "unsteady pitch", "wobbly", "out of tune", "fluctuating"],
    "flowing": ["fluent", "fluid", "smooth-flowing", "effortless", "unbroken", "streaming"],
    "monotone": ["flat", "droning", "monotonous", "level", "unvarying", "expressionless"],
    "staccato": ["choppy", "clipped", "abrupt", "jerky", "detached", "disjointed"],
    "punctuated": ["emphatic", "accented", "stressed", "measured", "deliberate", "marked"],
    "hesitant": ["tentative", "uncertain", "halting", "unsure", "wavering", "reluctant"],
    # speed
    "fast_talking": ["rapid", "quick", "hurried", "rushed", "speedy", "brisk"],
    # ---- situational (23)
    "admiring": ["adoring", "appreciative", "approving", "reverent", "impressed", "worshipful"],
    "angry": ["furious", "irate", "enraged", "mad", "livid", "cross"],
    "animated": ["lively", "spirited", "energetic", "vivacious", "dynamic", "vibrant"],
    "anxious": ["nervous", "worried", "uneasy", "apprehensive", "tense", "jittery"],
    "awed": ["amazed", "astonished", "wonderstruck", "dumbfounded", "spellbound", "in awe"],
    "bored": ["uninterested", "weary", "listless", "jaded", "indifferent", "tedious"],
    "calm": ["serene", "tranquil", "composed", "peaceful", "relaxed", "placid"],
    "confused": ["puzzled", "bewildered", "perplexed", "baffled", "uncertain", "muddled"],
    "desirous": ["longing", "yearning", "craving", "wistful", "covetous", "eager"],
    "disgusted": ["revolted", "repulsed", "sickened", "appalled", "nauseated", "grossed out"],
    "enthusiastic": ["eager", "keen", "excited", "passionate", "zealous", "ardent"],
    "enunciated": ["articulated", "pronounced", "deliberate", "carefully spoken", "over-articulated", "precise"],
    "guilty": ["remorseful", "ashamed", "contrite", "regretful", "apologetic", "sheepish"],
    "happy": ["joyful", "cheerful", "glad", "delighted", "merry", "upbeat"],
    "laughing": ["giggling", "chuckling", "amused", "tittering", "chortling", "cackling"],
    "pained": ["hurt", "anguished", "suffering", "agonized", "distressed", "aching"],
    "passive": ["detached", "resigned", "impassive", "unassertive", "meek", "apathetic"],
    "saddened": ["sad", "sorrowful", "melancholy", "downcast", "mournful", "dejected"],
    "sarcastic": ["sardonic", "mocking", "ironic", "snide", "wry", "scornful"],
    "scared": ["frightened", "afraid", "fearful", "terrified", "alarmed", "panicked"],
    "sleepy": ["drowsy", "tired", "groggy", "yawning", "lethargic", "half-asleep"],
    "sympathetic": ["compassionate", "caring", "understanding", "consoling", "kind", "comforting"],
    "whispered": ["whispering", "murmured", "breathed", "hushed", "under the breath", "sotto voce"],
}


def synonym_paraphrases(tags):
    """``{tag: six synonyms}`` for every tag of ``tags`` from :data:`SYNONYMS` (DataError naming missing tags)."""
    missing = [t for t in tags if t not in SYNONYMS]
    if missing:
        raise DataError(f"no synonym paraphrases for {len(missing)} tag(s) of the vocabulary: {missing}; add "
                        f"{NUM_PARAPHRASES} synonyms for each to SYNONYMS in local/make_tag_paraphrases.py "
                        f"or give a hand-written JSON with --from")
    return {t: list(SYNONYMS[t]) for t in tags}


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
        data = paraphrases_from_file(Path(args.source), tags) if args.source else synonym_paraphrases(tags)
    except DataError as e:
        print(f"make_tag_paraphrases.py: {e}", file=sys.stderr)
        return 1
    with atomic_write(Path(args.out)) as f:
        json.dump(data, f, indent=1, ensure_ascii=False)
        f.write("\n")
    return 0


if __name__ == "__main__":
    sys.exit(main(sys.argv[1:]))
