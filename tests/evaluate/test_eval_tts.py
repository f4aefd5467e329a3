"""eval_tts on a fabricated synthesis dir whose "generated" wavs are copies of ground-truth recordings, so
every figure has an independent reference: the judges run utterance by utterance here, counts by hand."""
from __future__ import annotations

import json
import shutil
from pathlib import Path

import numpy as np
import pytest
import soundfile as sf
import torch
import yaml

import importlib.util  # noqa: E402

# tests/conftest.py's corpus builder, loaded under its own name: with the whole suite collected, the module
# name ``conftest`` belongs to whichever directory-local conftest was imported last.
_spec = importlib.util.spec_from_file_location("_tests_root_conftest", Path(__file__).parent.parent / "conftest.py")
_root_conftest = importlib.util.module_from_spec(_spec)
_spec.loader.exec_module(_root_conftest)
make_data_dir = _root_conftest.make_data_dir

from parastyle.fileio import DataError, read_kv, write_kv  # noqa: E402

FE = {"type": "logmel"}
FACTORS = {"emotion": ("happy", "sad"), "gender": ("female", "male")}
SHORT = ["one", "two", "ten", "a b", "no", "yes", "up", "on", "it", "go", "be", "me"]


def _train(conf_model, data, lang, exp, valid_metric, mode, steps=3):
    from parastyle.train.config import load_config
    from parastyle.train.trainer import Trainer
    conf = load_config(None)
    conf["model"] = conf_model
    conf["data"].update({"feats": False, "frontend": dict(FE), "max_frames": 4000})
    conf["train"].update({"max_steps": steps, "valid_interval": steps, "ckpt_interval": steps, "log_interval": 1,
                          "device": "cpu", "progress": False})
    conf["valid"] = {"metric": valid_metric, "mode": mode, "patience": None}
    conf["data"]["factors"] = list(FACTORS) if conf_model["name"] == "multitask_ce" else []
    assert Trainer(conf, data, data, lang, exp).run() == "done"
    return exp


@pytest.fixture(scope="module")
def world(tmp_path_factory):
    from parastyle.text import build_char_vocab, write_tokens
    root = tmp_path_factory.mktemp("evaltts")
    lang = root / "lang"
    ref = make_data_dir(root / "ref", num_spk=4, utts_per_spk=3, sample_rate=22050, factors=FACTORS, lang_dir=lang,
                        caption=False, tags=False)
    utts = sorted(read_kv(ref / "utt2spk"))
    write_kv(ref / "text", dict(zip(utts, SHORT)))
    write_kv(ref / "utt2language", {u: ("de" if i % 3 == 0 else "en") for i, u in enumerate(utts)})   # not a judge factor
    (lang / "language.txt").write_text("de\nen\n")
    write_tokens(lang / "tokens.txt", build_char_vocab(read_kv(ref / "text")))
    torch.manual_seed(0)
    judge = _train({"name": "multitask_ce", "encoder": {"name": "tdnn", "hidden": 16, "kernel_sizes": [3],
                                                          "dilations": [1], "output_dim": 16, "dropout": 0.0}},
                   ref, lang, root / "judge_ce", "acc_mean", "max")
    asr = _train({"name": "ctc_asr", "token_list": str(lang / "tokens.txt"), "hidden": 16, "num_layers": 1,
                  "dropout": 0.0}, ref, lang, root / "judge_asr", "cer", "min")
    return {"root": root, "lang": lang, "ref": ref, "utts": utts, "judge": judge, "asr": asr}


def _copy(src, dst):
    x, sr = sf.read(src, dtype="int16")
    dst.parent.mkdir(parents=True, exist_ok=True)
    sf.write(dst, x, sr, subtype="PCM_16")
    return str(dst.resolve())


def _synth_dir(world, name="synth_test", copy_synthesis=True, style_exp="elsewhere/exp_parameta"):
    ref, utts = world["ref"], world["utts"]
    d = world["root"] / "exp_tts" / name
    if d.exists():
        shutil.rmtree(d)
    wav = read_kv(ref / "wav.scp")
    emo, gen, lg = read_kv(ref / "utt2emotion"), read_kv(ref / "utt2gender"), read_kv(ref / "utt2language")
    tables = {k: {} for k in ("wav.scp", "utt2spk", "text", "utt2prompt", "utt2ref", "utt2emotion", "utt2gender",
                              "utt2language")}
    spk = read_kv(ref / "utt2spk")
    text = read_kv(ref / "text")
    for i, u in enumerate(utts[:6]):
        tables["wav.scp"][u] = _copy(wav[u], d / "wavs" / f"{u}.wav")
        tables["utt2spk"][u] = spk[u]
        tables["text"][u] = text[u]
        tables["utt2ref"][u] = u
        tables["utt2gender"][u] = gen[u]
        tables["utt2language"][u] = lg[u]
        if i < 2:
            tables["utt2prompt"][u] = f"speech {u}"
            tables["utt2emotion"][u] = emo[u]
        elif i < 4:
            other = "sad" if emo[u] == "happy" else "happy"
            tables["utt2prompt"][u] = f"manipulated {u} emotion={other}"
            tables["utt2emotion"][u] = other
        else:
            tables["utt2prompt"][u] = "text a happy voice"
            tables["utt2emotion"][u] = "happy"
    for k, t in tables.items():
        write_kv(d / k, t)
    (d / "synth_conf.yaml").write_text(yaml.safe_dump({"tts_exp": str(world["root"] / "exp_tts"), "vocoder": "griffin_lim",
                                                       "style": {"exp": str(style_exp), "kind": "parameta"},
                                                       "copy_synthesis": copy_synthesis}))
    return d, tables


def _predict_one_by_one(exp, table):
    """Reference predictions: the judge model on each file's features, one utterance at a time."""
    from parastyle.data.audio import load_audio
    from parastyle.features.cmvn import GlobalCMVN  # noqa: F401 - judges here have no CMVN
    from parastyle.features.frontend import build_frontend
    from parastyle.train.checkpoint import load_model_from_exp
    model, config, task = load_model_from_exp(exp)
    fe = build_frontend(dict(config["data"]["frontend"]))
    out = {}
    for u, w in table.items():
        x = fe(load_audio(u, w, 22050))[None]
        batch = {"feats": x, "mask": torch.ones(1, x.shape[1], dtype=torch.bool), "utt_ids": [u]}
        p = model.predict(batch)
        out[u] = ({f: task.factors[f][int(p[f][0])] for f in task.factors} if "text" not in p else p["text"][0])
    return out


def test_eval_tts_figures_match_independent_computation(world):
    from parastyle.bin.eval_tts import main
    from parastyle.metrics.asr import cer
    from parastyle.metrics.tts import SpeakerEncoder, cosine
    d, t = _synth_dir(world)
    md = world["root"] / "RESULTS.md"
    assert main(["--synth_dir", str(d), "--ref_data", str(world["ref"]), "--judge", str(world["judge"]),
                 "--asr_judge", str(world["asr"]), "--tag", "copy", "--results_md", str(md)]) == 0
    res = json.loads((d / "results.json").read_text())
    m = res["metrics"]
    assert res["judges"]["style"] == str(world["judge"].resolve())
    pred = _predict_one_by_one(world["judge"], t["wav.scp"])
    for kind, utts in (("speech", world["utts"][:2]), ("manipulated", world["utts"][2:4]), ("text", world["utts"][4:6])):
        for f in FACTORS:
            hits = sum(pred[u][f] == t[f"utt2{f}"][u] for u in utts)
            assert m["style_accuracy"][kind][f]["accuracy"] == pytest.approx(hits / 2)
            assert m["style_accuracy"][kind][f]["chance"] == 0.5
    # ceiling: the judge on every ground-truth test recording
    gt_pred = _predict_one_by_one(world["judge"], read_kv(world["ref"] / "wav.scp"))
    emo = read_kv(world["ref"] / "utt2emotion")
    assert m["style_accuracy"]["ground_truth"]["emotion"]["accuracy"] == pytest.approx(
        sum(gt_pred[u]["emotion"] == emo[u] for u in emo) / len(emo))
    # manipulation: success on the moved factor, preservation of gender
    mu = world["utts"][2:4]
    assert m["manipulation"]["emotion"]["success"] == pytest.approx(
        sum(pred[u]["emotion"] == t["utt2emotion"][u] for u in mu) / 2)
    assert m["manipulation"]["emotion"]["preservation"] == pytest.approx(
        sum(pred[u]["gender"] == t["utt2gender"][u] for u in mu) / 2)
    assert m["manipulation"]["emotion"]["paper_accuracy"] == 0.9
    # intelligibility: generated audio = reference audio, so the two CERs are equal
    hyps = _predict_one_by_one(world["asr"], t["wav.scp"])
    utts = sorted(t["text"])
    ref_cer = cer([t["text"][u] for u in utts], [hyps[u] for u in utts])
    assert m["intelligibility"]["generated"]["cer"] == pytest.approx(ref_cer)
    assert m["intelligibility"]["ground_truth"]["cer"] == pytest.approx(ref_cer)
    # per target language: brute-force edit distance of each language's utterances
    def lev(a, b):
        d = list(range(len(b) + 1))
        for i, ca in enumerate(a, 1):
            prev, d[0] = d[0], i
            for j, cb in enumerate(b, 1):
                prev, d[j] = d[j], min(d[j] + 1, d[j - 1] + 1, prev + (ca != cb))
        return d[-1]
    by = m["intelligibility"]["generated"]["by_class"]
    assert m["intelligibility"]["by_class_of"] == "language"
    assert set(by) == {t["utt2language"][u] for u in utts}
    for lang, row in by.items():
        us = [u for u in utts if t["utt2language"][u] == lang]
        errs = sum(lev(t["text"][u], hyps[u]) for u in us)
        assert row["n"] == len(us) and row["cer"] == pytest.approx(errs / sum(len(t["text"][u]) for u in us))
    # speaker similarity: generated = prompt recording -> 1; reference level = prompt vs the speaker's next recording
    ss = m["speaker_similarity"]
    assert ss["generated_vs_prompt"] == pytest.approx(1.0, abs=1e-5) and ss["n"] == 4
    from parastyle.data.audio import load_audio
    enc = SpeakerEncoder()
    wav = read_kv(world["ref"] / "wav.scp")
    spk = read_kv(world["ref"] / "utt2spk")
    cos = []
    for u in world["utts"][:4]:
        other = sorted(o for o in spk if spk[o] == spk[u] and o != u)[0]
        cos.append(cosine(enc.embed(load_audio(u, wav[u], 16000), 16000), enc.embed(load_audio(other, wav[other], 16000), 16000)))
    assert ss["prompt_vs_same_speaker"] == pytest.approx(float(np.mean(cos)), abs=1e-5)
    assert m["mcd_copy_synthesis"]["mcd_db"] == pytest.approx(0.0, abs=1e-6)
    assert set(m["f0"]["emotion"]["generated"]) <= {"happy", "sad"}
    assert (d / "manipulated.png").stat().st_size > 1000
    text = md.read_text()
    assert "| copy | manipulated |" in text and "| copy | emotion | 2 |" in text
    row = next(l for l in text.splitlines() if l.startswith("| copy | ") and l.count("|") == 4)
    assert row == f"| copy | {100 * by['de']['cer']:.1f} ({100 * by['de']['cer']:.1f}) | {100 * by['en']['cer']:.1f} ({100 * by['en']['cer']:.1f}) |"


def test_bad_inputs_give_clear_errors(world):
    from parastyle.evaluate.tts import evaluate_tts
    d, t = _synth_dir(world, "synth_bad")
    u0 = world["utts"][0]
    Path(t["wav.scp"][u0]).unlink()
    with pytest.raises(DataError, match=f"{u0}.*not found"):
        evaluate_tts(d, world["ref"], world["judge"])
    d, t = _synth_dir(world, "synth_sr")
    x, _ = sf.read(t["wav.scp"][u0])
    sf.write(t["wav.scp"][u0], x, 16000)
    with pytest.raises(DataError, match="16000 Hz"):
        evaluate_tts(d, world["ref"], world["judge"])
    d, _ = _synth_dir(world, "synth_ok")
    with pytest.raises(DataError, match="expected a 'multitask_ce' exp"):
        evaluate_tts(d, world["ref"], world["asr"])
    d, _ = _synth_dir(world, "synth_self", style_exp=world["judge"])
    with pytest.raises(DataError, match="must be independent"):
        evaluate_tts(d, world["ref"], world["judge"])


def test_best_of_n_chosen_random_worst(world):
    from tts_world import make_style_exp
    from parastyle.evaluate.best_of_n import BestOfN
    from parastyle.evaluate.tts import evaluate_best_of_n
    from parastyle.features.extract import extract_feats
    from parastyle.metrics.asr import edit_errors
    root = world["root"]
    if not (world["ref"] / "feats.scp").is_file():
        extract_feats(world["ref"], {"type": "logmel", "sample_rate": 22050, "n_fft": 1024, "win_length": 1024,
                                     "hop_length": 256, "n_mels": 80}, root / "dump", nj=1)
    emo0, gen0 = read_kv(world["ref"] / "utt2emotion"), read_kv(world["ref"] / "utt2gender")
    write_kv(world["ref"] / "utt2caption", {u: f"a {emo0[u]} {gen0[u]} voice" for u in emo0})
    ranker_root = root / "ranker"
    ranker_root.mkdir(exist_ok=True)
    style_exp = make_style_exp(ranker_root, world["ref"], world["lang"])
    ref, utts = world["ref"], world["utts"]
    wav, emo, gen = read_kv(ref / "wav.scp"), read_kv(ref / "utt2emotion"), read_kv(ref / "utt2gender")
    text = read_kv(ref / "text")
    d = root / "exp_tts" / "synth_bon"
    tables = {k: {} for k in ("wav.scp", "utt2spk", "text", "utt2prompt", "utt2group", "utt2emotion", "utt2gender")}
    for g, (prompt, cands) in {"g1": ("text a happy voice", utts[0:3]), "g2": (f"speech {utts[6]}", utts[3:6])}.items():
        for k, src in enumerate(cands):
            c = f"{g}-c{k}"
            tables["wav.scp"][c] = _copy(wav[src], d / "wavs" / f"{c}.wav")
            tables["utt2spk"][c] = g
            tables["text"][c] = text[cands[0]]          # every candidate should say the group's text
            tables["utt2prompt"][c] = prompt
            tables["utt2group"][c] = g
            tables["utt2emotion"][c] = "happy" if g == "g1" else emo[utts[6]]
            tables["utt2gender"][c] = gen[src]
    for k, t in tables.items():
        write_kv(d / k, t)
    # the ranker may be the style model that conditioned the TTS (it selects; only the judges must be independent)
    (d / "synth_conf.yaml").write_text(yaml.safe_dump({"style": {"exp": str(style_exp), "kind": "parameta"}}))
    md = root / "RESULTS_bon.md"
    res = evaluate_best_of_n(d, ref, world["judge"], {"parameta": str(style_exp)}, asr_judge=world["asr"],
                             results_md=md)
    m = res["metrics"]["parameta"]
    row = [line for line in md.read_text().splitlines() if line.startswith("| synth_bon | parameta | 2 |")]
    assert len(row) == 1 and f"{100 * m['gender']['chosen']:.1f} / {100 * m['gender']['random']:.1f}" in row[0]
    # reference ranking: text prompt by the ranker's text tower, speech prompt by cosine to the prompt recording
    ranker = BestOfN(style_exp)
    items1 = [(c, tables["wav.scp"][c]) for c in sorted(tables["wav.scp"]) if c.startswith("g1")]
    r1 = [s.id for s in ranker.score("a happy voice", items1)]
    items2 = [(c, tables["wav.scp"][c]) for c in sorted(tables["wav.scp"]) if c.startswith("g2")]
    ids, emb = ranker.embed_candidates(items2 + [("p", wav[utts[6]])])
    k = ids.index("p")                                  # embeddings come back in length order
    cos = {c: np.mean([float(emb[gr][i] @ emb[gr][k]) for gr in emb]) for i, c in enumerate(ids) if c != "p"}
    r2 = sorted(cos, key=lambda c: (-cos[c], c))
    pred = _predict_one_by_one(world["judge"], tables["wav.scp"])
    for f in FACTORS:
        ok = {c: float(pred[c][f] == tables[f"utt2{f}"][c]) for c in tables["wav.scp"]}
        assert m[f]["chosen"] == pytest.approx((ok[r1[0]] + ok[r2[0]]) / 2)
        assert m[f]["worst"] == pytest.approx((ok[r1[-1]] + ok[r2[-1]]) / 2)
        assert m[f]["random"] == pytest.approx((np.mean([ok[c] for c in r1]) + np.mean([ok[c] for c in r2])) / 2)
    hyps = _predict_one_by_one(world["asr"], tables["wav.scp"])
    err = {c: edit_errors([list(tables["text"][c])], [list(hyps[c])])["errors"] for c in hyps}
    tot = len(tables["text"]["g1-c0"]) + len(tables["text"]["g2-c0"])
    assert m["cer"]["chosen"] == pytest.approx((err[r1[0]] + err[r2[0]]) / tot)
    assert m["cer"]["random"] == pytest.approx((np.mean([err[c] for c in r1]) + np.mean([err[c] for c in r2])) / tot)


def test_vocoded_ground_truth_dir_and_copy_synthesis_mcd(world, tmp_path):
    from parastyle.bin.eval_tts import main
    from parastyle.evaluate.tts import SynthDir, _mcd, RefData
    from parastyle.features.frontend import build_frontend
    from parastyle.metrics.tts import mcd
    from parastyle.data.audio import load_audio
    out = world["root"] / "exp_voc" / "synth_copy"
    assert main(["--copy_synthesis", "--ref_data", str(world["ref"]), "--vocoder", "griffin_lim",
                 "--max_utts", "3", "--write_dir", str(out)]) == 0
    s = SynthDir(out)
    utts = world["utts"][:3]
    assert s.utts == utts and all(s.prompt[u] == f"speech {u}" for u in utts) and s.conf["copy_synthesis"]
    assert s.targets["emotion"] == {u: read_kv(world["ref"] / "utt2emotion")[u] for u in utts}
    fe = build_frontend(FE)
    ref_wav = read_kv(world["ref"] / "wav.scp")
    vals = []
    for u in utts:
        a = fe(load_audio(u, ref_wav[u], 22050))
        x, sr = sf.read(s.wav_scp[u])
        assert sr == 22050 and x.size == a.shape[0] * 256          # frames x hop samples
        vals.append(mcd(a, fe(torch.from_numpy(x).float())))
    assert _mcd(s, RefData(world["ref"]))["mcd_db"] == pytest.approx(float(np.mean(vals)), rel=1e-6)
    js = tmp_path / "v.json"
    assert main(["--copy_synthesis", "--ref_data", str(world["ref"]), "--vocoder", "griffin_lim", "--max_utts", "3",
                 "--out", str(js)]) == 0
    gl = json.loads(js.read_text())["griffin_lim"]
    assert gl["n"] == 3 and gl["mcd_db"] == pytest.approx(float(np.mean(vals)), abs=0.1)   # 16-bit rounding apart
