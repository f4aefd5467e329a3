"""egs/parameta/tts1/local/data.sh on fabricated corpora: the same combined data dir as
egs/parameta/style1's data prep, written only under the tts1 recipe's paths, and phonemes for all."""
from corpus_fabrication import REPO, make_baker, make_cremad, make_esd, make_ljspeech, read_table, run_data_sh


def test_tts_data_prep_reuses_style1_mix(tmp_path):
    root = tmp_path / "corpora"
    corpora = {"cremad": make_cremad(root / "CREMA-D"), "esd": make_esd(root / "ESD"),
               "ljspeech": make_ljspeech(root / "LJSpeech-1.1"), "baker": make_baker(root / "BZNSYP")}
    args = [a for name, path in corpora.items() for a in (f"--{name}", path)]
    a, b = tmp_path / "tts", tmp_path / "style"
    proc = run_data_sh("parameta", args + ["--data_dir", a / "all", "--lang_dir", a / "lang", "--local_dir", a / "local"],
                       cwd=REPO / "egs" / "parameta" / "tts1")
    assert proc.returncode == 0, proc.stderr + proc.stdout
    ref = run_data_sh("parameta", args + ["--data_dir", b / "all", "--lang_dir", b / "lang", "--local_dir", b / "local"])
    assert ref.returncode == 0, ref.stderr
    names = sorted(p.name for p in (b / "all").iterdir())
    assert sorted(p.name for p in (a / "all").iterdir()) == names
    for n in names:
        assert (a / "all" / n).read_bytes() == (b / "all" / n).read_bytes(), n
    assert not (REPO / "egs" / "parameta" / "style1" / "data").exists()

    from parastyle.bin.make_phones import main as make_phones
    from parastyle.text.phonemes import read_phones
    assert make_phones(["--lang_dir", str(a / "lang"), "--build_vocab", str(a / "all")]) == 0
    phones = read_phones(a / "all" / "phones")
    lang = dict(read_table(a / "all" / "utt2language"))
    assert set(phones) == {u for u, _ in read_table(a / "all" / "utt2spk")}
    assert {seq[0] for seq in phones.values()} == {f"<{x}>" for x in set(lang.values())}
