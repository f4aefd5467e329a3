"""egs/parameta/style1/local/data.sh: the four corpora prepared and combined by label name."""
from pathlib import Path

from corpus_fabrication import (BAKER_LABELS, CREMAD_CLIPS, ESD_SPEAKERS, LJSPEECH_METADATA, copy_recipes, make_baker,
                                make_cremad, make_esd, make_ljspeech, read_table, run_data_sh, run_recipe)


def fabricate(root: Path) -> dict:
    return {"cremad": make_cremad(root / "CREMA-D"), "esd": make_esd(root / "ESD"),
            "ljspeech": make_ljspeech(root / "LJSpeech-1.1"), "baker": make_baker(root / "BZNSYP")}


def run(tmp_path: Path, corpora: dict, *extra):
    out = tmp_path / "data"
    args = [a for name, path in corpora.items() for a in (f"--{name}", path)]
    args += ["--data_dir", out / "all", "--lang_dir", out / "lang", "--local_dir", out / "local", *extra]
    return run_data_sh("parameta", args), out


def test_combined_data_dir(tmp_path):
    proc, out = run(tmp_path, fabricate(tmp_path / "corpora"))
    assert proc.returncode == 0, proc.stderr + proc.stdout
    data = out / "all"
    by_corpus = {
        "cremad": [f"cremad_{c[:4]}-{c}" for c in CREMAD_CLIPS],
        "esd": [f"esd_{s}-{s}_{n:06d}" for s, (_, us) in ESD_SPEAKERS.items() for n, _, _ in us],
        "ljspeech": [f"ljspeech_lj-{u}" for u, _, _ in LJSPEECH_METADATA],
        "baker": [f"baker_csmsc-{u}" for u, _, _ in BAKER_LABELS],
    }
    all_utts = sorted((u for us in by_corpus.values() for u in us), key=lambda u: u.encode())
    utt2spk = read_table(data / "utt2spk")
    assert [u for u, _ in utt2spk] == all_utts
    assert all(u.startswith(s + "-") for u, s in utt2spk)
    speakers = [u for u, _ in read_table(data / "spk2utt")]
    assert speakers == sorted(speakers, key=lambda s: s.encode())
    # each corpus keeps exactly the labels its own data prep wrote; unknown stays absent
    for name in ("emotion", "age", "gender", "language", "caption"):
        combined = dict(read_table(data / f"utt2{name}")) if (data / f"utt2{name}").exists() else {}
        expected = {}
        for corpus in by_corpus:
            table = out / "local" / corpus / "all" / f"utt2{name}"
            if table.exists():
                expected.update(read_table(table))
        assert combined == expected, name
    age = dict(read_table(data / "utt2age"))
    assert set(age) == set(by_corpus["cremad"]) | set(by_corpus["ljspeech"])
    language = dict(read_table(data / "utt2language"))
    assert {language[u] for u in by_corpus["baker"]} == {"chinese"}
    assert language["esd_0001-0001_000001"] == "chinese" and language["esd_0011-0011_000001"] == "english"
    text = dict(read_table(data / "text"))
    assert text["baker_csmsc-000001"] == "卡尔普陪外孙玩滑梯。"
    assert text["cremad_1001-1001_DFA_ANG_XX"] == "Don't forget a jacket"
    for vocab, labels in (("emotion", "happy angry sad neutral surprise disgust fear"),
                          ("age", "child teenager young_adult adult senior"),
                          ("gender", "male female"), ("language", "chinese english")):
        assert (out / "lang" / f"{vocab}.txt").read_text().split() == labels.split()
    from parastyle.data.datadir import validate_data_dir
    assert validate_data_dir(str(data), no_feats=True, lang_dir=str(out / "lang")) == []


def test_subset_of_corpora(tmp_path):
    corpora = fabricate(tmp_path / "corpora")
    proc, out = run(tmp_path, {"esd": corpora["esd"], "baker": corpora["baker"]}, "--corpora", "esd,baker")
    assert proc.returncode == 0, proc.stderr
    spks = {s for _, s in read_table(out / "all" / "utt2spk")}
    assert spks == {"baker_csmsc", "esd_0001", "esd_0003", "esd_0011", "esd_0014"}
    assert not (out / "all" / "utt2age").exists()


def test_missing_corpus_paths_are_listed(tmp_path):
    corpora = fabricate(tmp_path / "corpora")
    del corpora["esd"], corpora["baker"]
    proc, out = run(tmp_path, corpora)
    assert proc.returncode != 0
    assert "no path set for: esd baker" in proc.stderr and "--esd <dir>" in proc.stderr
    assert not (out / "all").exists()


def test_error_in_one_corpus_stops_the_mix(tmp_path):
    corpora = fabricate(tmp_path / "corpora")
    with open(corpora["ljspeech"] / "metadata.csv", "a", encoding="utf-8") as f:
        f.write("LJ009-0001|broken\n")
    proc, out = run(tmp_path, corpora)
    assert proc.returncode != 0
    assert "metadata.csv:4" in proc.stderr
    assert not (out / "all").exists()


def test_run_sh_prepares_and_splits_by_speaker(tmp_path):
    """run.sh -> style.sh stages 0 (this data prep) and 1 (speaker-independent split)."""
    corpora = fabricate(tmp_path / "corpora")
    root = copy_recipes(tmp_path / "repo", ["parameta", "cremad", "esd", "ljspeech", "baker"])
    recipe = root / "egs" / "parameta" / "style1"
    args = [a for name, path in corpora.items() for a in (f"--{name}", path)]
    proc = run_recipe(recipe, [*args, "--stage", "0", "--stop_stage", "1", "--split_args", "--dev 1 --test 1"])
    assert proc.returncode == 0, proc.stderr[-3000:]
    all_spk = {s for _, s in read_table(recipe / "data" / "all" / "utt2spk")}
    assert len(all_spk) == 10
    sets = {name: {s for _, s in read_table(recipe / "data" / name / "utt2spk")} for name in ("train", "dev", "test")}
    assert sets["train"] | sets["dev"] | sets["test"] == all_spk
    assert not (sets["train"] & sets["dev"] or sets["train"] & sets["test"] or sets["dev"] & sets["test"])
    assert len(sets["dev"]) == 1 and len(sets["test"]) == 1
    assert (recipe / "data" / "lang" / "emotion.txt").read_text().split()[0] == "happy"


def test_run_sh_without_corpus_paths_says_where_to_get_them(tmp_path):
    root = copy_recipes(tmp_path / "repo", ["parameta", "cremad", "esd", "ljspeech", "baker"])
    proc = run_recipe(root / "egs" / "parameta" / "style1", ["--stop_stage", "0"])
    assert proc.returncode != 0
    for url in ("CheyneyComputerScience/CREMA-D", "HLTSingapore", "keithito.com", "data-baker.com"):
        assert url in proc.stderr


def test_recipe_configs_carry_the_paper_settings():
    """Every recipe's conf/: 80-bin log-mel at 22,050 Hz and ParaMETA's training hyperparameters."""
    import yaml

    from corpus_fabrication import REPO
    from parastyle.train.config import load_config

    for recipe in ("cremad", "esd", "ljspeech", "baker", "parameta"):
        conf_dir = REPO / "egs" / recipe / "style1" / "conf"
        feats = yaml.safe_load((conf_dir / "feats.yaml").read_text())
        assert feats == {"type": "logmel", "sample_rate": 22050, "n_fft": 1024, "win_length": 1024,
                         "hop_length": 256, "n_mels": 80}, recipe
        configs = sorted(conf_dir.glob("train_parameta_*.yaml"))
        assert [p.name for p in configs] == [f"train_parameta_{e}.yaml" for e in ("cnn", "lstm", "qformer", "transformer")]
        # the CPU configs next to them: device auto, a laptop step count, the paper's ParaMETA losses
        for name in ("train_ce.yaml", "train_parameta.yaml"):
            cpu = load_config(str(conf_dir / name))
            assert cpu["train"]["device"] == "auto" and cpu["train"]["max_steps"] <= 5000, (recipe, name)
            assert cpu["data"]["factors"] == load_config(str(configs[1]))["data"]["factors"], (recipe, name)
        cpu = load_config(str(conf_dir / "train_parameta.yaml"))["model"]
        assert (cpu["meta_dim"], cpu["subspace_dim"], cpu["tau_supcon"], cpu["tau_meta"], cpu["lam"]) == \
            (768, 192, 0.07, 0.1, 0.1), recipe
        for path in configs:
            conf = load_config(str(path))
            model = conf["model"]
            temps = (model.get("tau_supcon", model.get("tau")), model.get("tau_meta", model.get("tau")))
            assert (model["name"], model["meta_dim"], model["subspace_dim"], model["lam"]) == \
                ("parameta", 768, 192, 0.1), path
            assert temps in ((0.07, 0.1), (0.1, 0.1)), path
            assert conf["data"]["batch_size"] == 32 and conf["data"]["max_frames"] is None, path
            assert conf["train"]["max_steps"] == 40000 and conf["train"]["device"] == "cuda", path
            assert model["encoder"]["name"] == path.stem.split("_")[-1], path
    parameta = load_config(str(REPO / "egs/parameta/style1/conf/train_parameta_lstm.yaml"))
    assert parameta["data"]["factors"] == ["emotion", "age", "gender", "language"]


def test_age_groups_and_captions():
    from parastyle.data import corpus_prep as labels

    groups = {0: "child", 12: "child", 13: "teenager", 19: "teenager", 20: "young_adult", 30: "young_adult",
              31: "adult", 50: "adult", 51: "senior", 74: "senior"}
    assert {age: labels.age_group(age) for age in groups} == groups
    assert labels.make_caption({}) == "a speaker"
    assert labels.make_caption({"age": "child", "gender": "female"}) == "a girl"
    assert labels.make_caption({"emotion": "fear", "age": "senior"}) == "a fearful elderly person"
    assert labels.make_caption({"emotion": "surprise", "age": "teenager", "gender": "male",
                                "language": "chinese"}) == "a surprised teenage boy speaking Chinese"
    assert labels.make_caption({"emotion": "angry", "age": "adult", "gender": "male", "language": "english"}) \
        == "an angry adult man speaking English"
    # a corpus's own labels outside the caption tables are written as they are
    assert labels.make_caption({"emotion": "boredom", "gender": "female"}) == "a bored woman"
    assert labels.make_caption({"emotion": "amused", "age": "middle_aged", "language": "german"}) \
        == "a speaker (age middle aged) speaking German with an amused voice"
