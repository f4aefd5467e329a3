"""egs/paraspeechcaps/clap1/local/prepare_paraspeechcaps.py on fabricated parquet files + silent wavs."""
import json
import subprocess
import sys
from pathlib import Path

import numpy as np
import pytest

pa = pytest.importorskip("pyarrow")
import pyarrow.parquet as pq  # noqa: E402
import soundfile as sf  # noqa: E402

from parastyle.data.datadir import validate_data_dir  # noqa: E402
from parastyle.data.dataset import _tags_from_value  # noqa: E402
from parastyle.fileio import read_kv, read_list  # noqa: E402

RECIPE = Path(__file__).resolve().parents[2] / "egs" / "paraspeechcaps" / "clap1"
SCRIPT = RECIPE / "local" / "prepare_paraspeechcaps.py"
PARAPHRASES = RECIPE / "local" / "make_tag_paraphrases.py"


def write_parquet(path: Path, rows):
    path.parent.mkdir(parents=True, exist_ok=True)
    cols = {k: [r[k] for r in rows] for k in rows[0]}
    pq.write_table(pa.table(cols), path)


def row(source, rel, caps, intr, sit, dur=1.0, **extra):
    r = {"source": source, "relative_audio_path": rel, "text_description": caps,
         "intrinsic_tags": intr, "situational_tags": sit, "duration": dur}
    r.update(extra)
    return r


def make_wav(root: Path, source: str, rel: str, seconds=0.2):
    p = root / source / rel
    p.parent.mkdir(parents=True, exist_ok=True)
    sf.write(p, np.zeros(int(16000 * seconds), dtype=np.float32), 16000)


def fabricate(tmp: Path):
    audio = tmp / "audio"
    psc = tmp / "psc"
    intr_rows = [row("expresso", "ex01/default/ex01_default_001.wav", ["A deep, husky voice."], ["deep", "husky"], []),
                 row("ears", "p001/emo_amazement_freeform.wav", ["Shrill and fast.", "A high voice."],
                     ["shrill", " fast \t talking "], [], 2.5),
                 row("voxceleb", "id10001/1zcIwhmdeo4/00001.wav", ["A nasal speaker."], ["nasal"], [])]
    sit_rows = [row("expresso", "ex02/whisper/ex02_whisper_007.wav", ["Someone whispers."], [], ["whispered"]),
                row("emilia", "EN/EN_B00000/EN_B00000_S00000_W000000.wav", ["Sarcastic tone."], ["deep"],
                    ["sarcastic"])]
    eval_ret = [row("ears", "p002/emo_neutral_sentences.wav", ["A calm deep voice."], ["deep"], []),
                row("ears", "p003/emo_neutral_sentences.wav", ["A calm deep voice."], ["deep"], [])]
    eval_cls = [row("ears", "p004/a.wav", ["x"], ["shrill", "fast talking"], []),
                row("ears", "p005/b.wav", ["y"], ["deep"], []),
                row("ears", "p006/c.wav", ["z"], ["nasal", "husky"], [])]
    for r in intr_rows + sit_rows + eval_ret + eval_cls:
        make_wav(audio, r["source"], r["relative_audio_path"])
    write_parquet(psc / "paraspeechcaps-intrinsic-train" / "data" / "train-00000-of-00001.parquet", intr_rows)
    write_parquet(psc / "paraspeechcaps-situational-train" / "data" / "train-00000-of-00001.parquet", sit_rows)
    ev = psc / "paraspeechclap-eval-intrinsic" / "data"
    write_parquet(ev / "test-00000-of-00001.parquet", eval_ret)
    write_parquet(ev / "classification_pitch-00000-of-00001.parquet", eval_cls)
    return audio, psc


def run(args, cwd=None):
    return subprocess.run([sys.executable, str(SCRIPT)] + [str(a) for a in args], capture_output=True, text=True,
                          cwd=cwd)


def test_prepare_all_variants(tmp_path):
    audio, psc = fabricate(tmp_path)
    out = tmp_path / "data"
    r = run(["--audio_root", audio, "--out", out,
             "--intrinsic_train", psc / "paraspeechcaps-intrinsic-train",
             "--situational_train", psc / "paraspeechcaps-situational-train",
             "--eval_intrinsic", psc / "paraspeechclap-eval-intrinsic",
             "--class_labels", RECIPE / "conf" / "classification_labels.json"])
    assert r.returncode == 0, r.stderr
    ti = out / "train_intrinsic"
    wav = read_kv(ti / "wav.scp", check_sorted=True)
    uid = "expresso-ex01-default-ex01_default_001"
    assert set(wav) == {uid, "ears-p001-emo_amazement_freeform", "voxceleb-id10001-1zcIwhmdeo4-00001"}
    assert wav[uid] == str((audio / "expresso/ex01/default/ex01_default_001.wav").resolve())
    assert read_kv(ti / "utt2caption")["ears-p001-emo_amazement_freeform"] == "Shrill and fast."
    # every caption of a clip with several: captions.json (the clap dataset draws one per draw)
    assert json.loads((ti / "captions.json").read_text()) == {
        "ears-p001-emo_amazement_freeform": ["Shrill and fast.", "A high voice."]}
    assert not (out / "train_situational" / "captions.json").exists()
    assert "ears-p001-emo_amazement_freeform" in json.loads((out / "train_combined" / "captions.json").read_text())
    # utt2tags: space-separated tags; a tag with whitespace is one token with "_"
    tags = read_kv(ti / "utt2tags")
    assert tags[uid] == "deep husky"
    assert _tags_from_value(tags["ears-p001-emo_amazement_freeform"]) == ["shrill", "fast_talking"]
    assert read_kv(ti / "utt2dur")["ears-p001-emo_amazement_freeform"] == "2.500"
    assert read_kv(ti / "utt2spk")[uid] == uid
    assert read_kv(ti / "spk2utt")[uid] == uid
    # situational training set carries situational tags only
    ts = read_kv(out / "train_situational" / "utt2tags")
    assert ts["emilia-EN-EN_B00000-EN_B00000_S00000_W000000"] == "sarcastic"
    # combined: union, situational repeated round(3/2) = 2 times, both tag families
    comb = read_kv(out / "train_combined" / "utt2tags")
    assert len(read_kv(out / "train_combined" / "wav.scp")) == 3 + 2 * 2
    assert comb["emilia-EN-EN_B00000-EN_B00000_S00000_W000000-rep1"] == "deep sarcastic"
    assert comb["emilia-EN-EN_B00000-EN_B00000_S00000_W000000"] == "deep sarcastic"
    # evaluation: retrieval split and classification split with its factor and vocabulary
    ret = read_kv(out / "eval_intrinsic_test" / "utt2caption")
    assert list(ret.values()) == ["A calm deep voice."] * 2
    cls = read_kv(out / "eval_intrinsic_classification_pitch" / "utt2pitch")
    assert cls == {"ears-p004-a": "shrill", "ears-p005-b": "deep", "ears-p006-c": "nasal"}
    assert read_kv(out / "eval_intrinsic_classification_pitch" / "utt2tags")["ears-p004-a"] == "shrill fast_talking"
    assert read_list(out / "lang" / "pitch.txt") == ["shrill", "nasal", "deep"]
    assert read_list(out / "lang" / "intrinsic_tags.txt") == ["deep", "fast_talking", "husky", "nasal", "shrill"]
    assert read_list(out / "lang" / "situational_tags.txt") == ["sarcastic", "whispered"]
    assert read_list(out / "lang" / "tags.txt") == ["deep", "fast_talking", "husky", "nasal", "sarcastic", "shrill",
                                                    "whispered"]
    assert not list(out.glob("*.tmp"))
    # every produced dir is valid against the vocabularies: each tag of utt2tags is in lang/tags.txt,
    # each utt2pitch label in lang/pitch.txt
    dirs = sorted(p for p in out.iterdir() if p.is_dir() and p.name != "lang")
    assert [p.name for p in dirs] == ["eval_intrinsic_classification_pitch", "eval_intrinsic_test", "train_combined",
                                      "train_intrinsic", "train_situational"]
    for d in dirs:
        assert validate_data_dir(d, no_feats=True, no_text=True, lang_dir=out / "lang") == [], d
    # the lang check catches tags outside the vocabulary, e.g. the former comma-joined format
    (ti / "utt2tags").write_text((ti / "utt2tags").read_text().replace("deep husky", "deep,husky"))
    problems = validate_data_dir(ti, no_feats=True, no_text=True, lang_dir=out / "lang")
    assert len(problems) == 1 and "'deep,husky'" in problems[0]
    assert "utt2tags:2: utterance 'expresso-ex01-default-ex01_default_001'" in problems[0]
    assert "tags.txt" in problems[0]


def test_all_captions_and_validator(tmp_path):
    audio, psc = fabricate(tmp_path)
    out = tmp_path / "data"
    r = run(["--audio_root", audio, "--out", out, "--all_captions",
             "--intrinsic_train", psc / "paraspeechcaps-intrinsic-train"])
    assert r.returncode == 0, r.stderr
    caps = read_kv(out / "train_intrinsic" / "utt2caption")
    assert caps["ears-p001-emo_amazement_freeform-c1"] == "A high voice."
    assert validate_data_dir(out / "train_intrinsic", no_feats=True, no_text=True, lang_dir=out / "lang") == []


def test_errors_name_the_problem(tmp_path):
    audio, psc = fabricate(tmp_path)
    (audio / "ears" / "p005" / "b.wav").unlink()
    out = tmp_path / "data"
    args = ["--audio_root", audio, "--out", out, "--eval_intrinsic", psc / "paraspeechclap-eval-intrinsic",
            "--class_labels", RECIPE / "conf" / "classification_labels.json"]
    r = run(args)
    assert r.returncode == 1 and "1 audio file(s) not found" in r.stderr and "p005/b.wav" in r.stderr
    r = run(args + ["--skip_missing"])
    assert r.returncode == 0, r.stderr
    assert "left out" in r.stderr
    assert len(read_kv(out / "eval_intrinsic_classification_pitch" / "utt2pitch")) == 2
    # no candidate styles for the attribute -> error naming it
    empty = tmp_path / "none.json"
    empty.write_text(json.dumps({}))
    r = run(["--audio_root", audio, "--out", out, "--skip_missing",
             "--eval_intrinsic", psc / "paraspeechclap-eval-intrinsic", "--class_labels", empty])
    assert r.returncode == 1 and "'pitch'" in r.stderr
    # a missing column is named with the file
    bad = tmp_path / "bad" / "data" / "train-00000-of-00001.parquet"
    write_parquet(bad, [{"source": "ears", "relative_audio_path": "p001/x.wav"}])
    r = run(["--audio_root", audio, "--out", out, "--intrinsic_train", tmp_path / "bad"])
    assert r.returncode == 1 and "missing column(s)" in r.stderr and "text_description" in r.stderr


def test_data_sh_prints_instructions_without_data(tmp_path):
    r = subprocess.run(["bash", "local/data.sh", "--psc_root", str(tmp_path / "nope")], cwd=RECIPE,
                       capture_output=True, text=True, env={"PATH": "/usr/bin:/bin"})
    assert r.returncode == 1
    assert "ajd12342/paraspeechclap-eval-intrinsic" in r.stderr and "psc_root" in r.stderr


def test_tag_paraphrases_use_the_vocabulary_names(tmp_path):
    audio, psc = fabricate(tmp_path)
    out = tmp_path / "data"
    r = run(["--audio_root", audio, "--out", out, "--intrinsic_train", psc / "paraspeechcaps-intrinsic-train"])
    assert r.returncode == 0, r.stderr
    vocab = out / "lang" / "intrinsic_tags.txt"
    tags = read_list(vocab)
    assert "fast_talking" in tags
    gen = tmp_path / "gen.json"
    r = subprocess.run([sys.executable, str(PARAPHRASES), str(vocab), str(gen)], capture_output=True, text=True)
    assert r.returncode == 0, r.stderr
    data = json.loads(gen.read_text())
    assert list(data) == tags and all(len(v) == 6 for v in data.values())
    # synonym paraphrases (six per tag, as in the paper), not sentence patterns around the tag word
    sys.path.insert(0, str(RECIPE / "local"))
    try:
        from make_tag_paraphrases import SYNONYMS
    finally:
        sys.path.remove(str(RECIPE / "local"))
    assert data == {t: SYNONYMS[t] for t in tags}
    assert data["shrill"] == ["piercing", "high-pitched", "screechy", "strident", "squeaky", "shrieking"]
    for t, items in data.items():
        assert len(set(items)) == 6 and t.replace("_", " ") not in items, t
        assert not any(t.replace("_", " ") in s.split() for s in items), t
    assert len(SYNONYMS) == 28 + 23 and all(len(set(v)) == 6 for v in SYNONYMS.values())
    # a vocabulary tag without synonyms stops the script, naming it
    (tmp_path / "odd.txt").write_text("deep\nmysterious_tag\n")
    r = subprocess.run([sys.executable, str(PARAPHRASES), str(tmp_path / "odd.txt"), str(tmp_path / "odd.json")],
                       capture_output=True, text=True)
    assert r.returncode == 1 and "'mysterious_tag'" in r.stderr and not (tmp_path / "odd.json").exists()
    # a hand-written file: keys normalised like utt2tags, extra keys named, missing tags an error
    hand = {t: [f"{t} one", f"{t} two"] for t in tags if t != "fast_talking"}
    hand["fast  talking"] = ["Fast talking."]
    hand["whispered"] = ["Whispering."]
    src = tmp_path / "hand.json"
    src.write_text(json.dumps(hand))
    r = subprocess.run([sys.executable, str(PARAPHRASES), "--from", str(src), str(vocab), str(gen)],
                       capture_output=True, text=True)
    assert r.returncode == 0, r.stderr
    data = json.loads(gen.read_text())
    assert list(data) == tags and data["fast_talking"] == ["Fast talking."]
    assert "1 key(s) not in the tag vocabulary" in r.stderr and "whispered" in r.stderr
    # every tag of utt2tags has paraphrases (the clap model's tag loss refuses unknown tags)
    from parastyle.losses.tagging import TagParaphrases
    utt_tags = [_tags_from_value(v) for v in read_kv(out / "train_intrinsic" / "utt2tags").values()]
    assert TagParaphrases.from_json(gen).multi_hot(utt_tags).sum().item() == sum(len(t) for t in utt_tags)
    del hand["deep"]
    src.write_text(json.dumps(hand))
    r = subprocess.run([sys.executable, str(PARAPHRASES), "--from", str(src), str(vocab), str(gen)],
                       capture_output=True, text=True)
    assert r.returncode == 1 and "no paraphrases for 1 tag(s)" in r.stderr and "'deep'" in r.stderr


def test_every_classification_split_is_prepared(tmp_path):
    """Every classification_<attribute> split of every evaluation set becomes a data dir with
    utt2<attribute> from the classification_tag column (no candidate list needed), intrinsic and
    situational alike; a split without that column and without candidates is still an error."""
    audio, psc = fabricate(tmp_path)
    ev = psc / "paraspeechclap-eval-intrinsic" / "data"
    clarity = [row("ears", "p007/c1.wav", ["A crisp voice."], ["crisp"], [], classification_tag="crisp"),
               row("ears", "p008/c2.wav", ["Slurred words."], ["slurred", "deep"], [], classification_tag="slurred"),
               row("ears", "p009/c3.wav", ["A lisp."], ["lisp"], [], classification_tag="lisp")]
    texture = [row("ears", "p010/t1.wav", ["Husky."], ["husky"], [], classification_tag="husky"),
               row("ears", "p011/t2.wav", ["Vocal fry."], ["vocal-fry"], [], classification_tag="vocal-fry")]
    sit = [row("expresso", "ex03/happy/h1.wav", ["Happy!"], [], ["happy"], classification_tag="happy"),
           row("expresso", "ex03/sad/s1.wav", ["So sad."], [], ["saddened"], classification_tag="saddened")]
    for r in clarity + texture + sit:
        make_wav(audio, r["source"], r["relative_audio_path"])
    write_parquet(ev / "classification_clarity-00000-of-00001.parquet", clarity)
    write_parquet(ev / "classification_texture-00000-of-00001.parquet", texture)
    evs = psc / "paraspeechclap-eval-situational" / "data"
    write_parquet(evs / "classification_emotion-00000-of-00001.parquet", sit)
    out = tmp_path / "data"
    r = run(["--audio_root", audio, "--out", out, "--eval_intrinsic", psc / "paraspeechclap-eval-intrinsic",
             "--eval_situational", psc / "paraspeechclap-eval-situational",
             "--class_labels", RECIPE / "conf" / "classification_labels.json"])
    assert r.returncode == 0, r.stderr
    assert read_kv(out / "eval_intrinsic_classification_clarity" / "utt2clarity") == {
        "ears-p007-c1": "crisp", "ears-p008-c2": "slurred", "ears-p009-c3": "lisp"}
    assert read_kv(out / "eval_intrinsic_classification_texture" / "utt2texture") == {
        "ears-p010-t1": "husky", "ears-p011-t2": "vocal-fry"}
    assert read_kv(out / "eval_situational_classification_emotion" / "utt2emotion") == {
        "expresso-ex03-happy-h1": "happy", "expresso-ex03-sad-s1": "saddened"}
    assert read_list(out / "lang" / "clarity.txt") == ["crisp", "lisp", "slurred"]
    assert read_list(out / "lang" / "emotion.txt") == ["happy", "saddened"]
    assert read_list(out / "lang" / "pitch.txt") == ["shrill", "nasal", "deep"]     # candidates of the JSON
    for name in ("clarity", "texture", "pitch"):
        d = out / f"eval_intrinsic_classification_{name}"
        assert validate_data_dir(d, no_feats=True, no_text=True, lang_dir=out / "lang") == [], d
    # a classification_tag outside the candidates of --class_labels is an error naming them
    write_parquet(ev / "classification_pitch-00000-of-00001.parquet",
                  [row("ears", "p007/c1.wav", ["x"], ["deep"], [], classification_tag="booming")])
    r = run(["--audio_root", audio, "--out", out, "--eval_intrinsic", psc / "paraspeechclap-eval-intrinsic",
             "--class_labels", RECIPE / "conf" / "classification_labels.json"])
    assert r.returncode == 1 and "booming" in r.stderr and "pitch" in r.stderr


def test_paper_configs_carry_the_papers_values():
    """Projection dropout 0.5, text max length 512, one caption per draw, tag loss only in the
    intrinsic variant; the projection section builds the authors' head."""
    import yaml

    from parastyle.nn.projection import ProjectionHead
    for variant, tag_weight in (("combined", 0.0), ("intrinsic", 1.0), ("situational", 0.0)):
        c = yaml.safe_load((RECIPE / "conf" / f"train_clap_{variant}.yaml").read_text())
        m = c["model"]
        assert m["projection"] == {"dropout": 0.5}, variant
        assert ProjectionHead(4, 3, **m["projection"]).dropout.p == 0.5
        assert m["text_encoder"]["max_length"] == 512 and m["embed_dim"] == 768, variant
        assert m["temperature"] == 0.07 and m["max_logit_scale"] == 100.0, variant
        assert m["loss_weights"] == {"infonce": 1.0, "tag_bce": tag_weight}, variant
        assert c["data"]["dataset"] == "clap", variant
        assert c["optim"]["lr"] == 1.0e-5 and c["data"]["batch_size"] == 128 and c["train"]["max_steps"] == 4500
