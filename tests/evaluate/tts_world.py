"""A tiny TTS world for tests: espeak-ng recordings, phones, log-mel + prosody, a ParaMETA style exp
(tiny BERT text tower, prototypes filled by one pass) and a fastspeech_style exp trained a few steps
by the one trainer."""
from __future__ import annotations

import subprocess
from dataclasses import asdict
from pathlib import Path

import torch
import yaml

FE = {"type": "logmel", "sample_rate": 22050, "n_fft": 1024, "win_length": 1024, "hop_length": 256, "n_mels": 80}
FACTORS = {"emotion": ["happy", "sad"], "gender": ["female", "male"], "language": ["en", "de"]}
WORDS = ["a", "happy", "sad", "voice", "male", "female", "speaking", "english", "german", "person", "is"]
TEXTS = {"en": ["hello there friend", "the cat sat down", "good morning to you"],
         "de": ["guten tag mein freund", "das ist gut", "wir gehen heim"]}


def make_world(root: Path, train_steps: int = 4) -> dict:
    from parastyle.bin.make_phones import main as make_phones
    from parastyle.features.extract import extract_feats
    from parastyle.features.pitch import extract_prosody
    from parastyle.fileio import write_kv, write_list

    root = Path(root)
    lang, data, wavs = root / "lang", root / "data", root / "wavs"
    for p in (lang, data, wavs):
        p.mkdir(parents=True)
    for f, v in FACTORS.items():
        write_list(lang / f"{f}.txt", v)
    tables = {k: {} for k in ("wav.scp", "text", "utt2spk", "utt2emotion", "utt2gender", "utt2language", "utt2caption")}
    i = 0
    for spk, (gender, lg, voice) in {"spkA": ("female", "en", "en-us+f2"), "spkB": ("male", "de", "de+m3")}.items():
        for k, text in enumerate(TEXTS[lg]):
            utt = f"{spk}-{k:02d}"
            emo = ["happy", "sad"][(i + k) % 2]
            w = wavs / f"{utt}.wav"
            subprocess.run(["espeak-ng", "-v", voice, "-s", "190" if emo == "happy" else "130",
                            "-p", "70" if emo == "happy" else "30", "-w", str(w), text], check=True)
            tables["wav.scp"][utt] = str(w)
            tables["text"][utt] = text
            tables["utt2spk"][utt] = spk
            tables["utt2emotion"][utt] = emo
            tables["utt2gender"][utt] = gender
            tables["utt2language"][utt] = lg
            tables["utt2caption"][utt] = f"a {emo} {gender} voice speaking {'english' if lg == 'en' else 'german'}"
        i += 1
    for name, t in tables.items():
        write_kv(data / name, t)
    write_kv(data / "spk2utt", {"spkA": " ".join(u for u in tables["utt2spk"] if u.startswith("spkA")),
                                "spkB": " ".join(u for u in tables["utt2spk"] if u.startswith("spkB"))})
    assert make_phones(["--lang_dir", str(lang), "--build_vocab", str(data)]) == 0
    extract_feats(data, dict(FE), root / "dump", nj=1)
    extract_prosody(data, root / "dump")
    style_exp = make_style_exp(root, data, lang)
    from parastyle.evaluate.synthesis import StyleEncoder, write_style_vectors
    write_style_vectors(StyleEncoder(style_exp), data, root / "dump")
    tts_exp = train_tts(root, data, lang, style_exp, train_steps)
    return {"root": root, "data": data, "lang": lang, "style_exp": style_exp, "tts_exp": tts_exp}


def bert_dir(root: Path) -> str:
    from transformers import BertConfig, BertModel, BertTokenizer
    path = root / "bert"
    path.mkdir()
    (path / "vocab.txt").write_text("\n".join(["[PAD]", "[UNK]", "[CLS]", "[SEP]", "[MASK]"] + WORDS) + "\n")
    BertTokenizer(str(path / "vocab.txt")).save_pretrained(str(path))
    torch.manual_seed(0)
    BertModel(BertConfig(vocab_size=len(WORDS) + 5, hidden_size=12, num_hidden_layers=1, num_attention_heads=2,
                         intermediate_size=24, max_position_embeddings=32)).save_pretrained(str(path))
    return str(path)


def make_style_exp(root: Path, data: Path, lang: Path) -> Path:
    """A ParaMETA exp dir (config, task, model.pt) whose prototypes saw every class once."""
    from parastyle.data.collate import move_batch
    from parastyle.models import build_model
    from parastyle.models.task import TaskInfo
    from parastyle.train.build import build_dataloader
    from parastyle.train.checkpoint import save_checkpoint
    from parastyle.train.config import DEFAULTS, deep_merge, save_config
    exp = root / "exp_parameta"
    exp.mkdir()
    model_conf = {"name": "parameta", "encoder": {"name": "transformer", "d_model": 16, "nhead": 2,
                                                  "dim_feedforward": 32, "num_layers": 1, "dropout": 0.0},
                  "meta_dim": 24, "subspace_dim": 8, "tau": 0.2, "text_encoder": {"path": bert_dir(root)}}
    config = deep_merge(DEFAULTS, {"model": model_conf, "data": {"feats": True, "cmvn": None}})
    task = TaskInfo(feat_dim=80, factors=FACTORS, speakers=["spkA", "spkB"], lang_dir=str(lang.resolve()))
    torch.manual_seed(0)
    model = build_model(model_conf, task)
    model.train()
    for batch in build_dataloader(config, data, task=task, train=False):
        model(move_batch(batch, "cpu"))
    save_config(exp / "config.yaml", config, {"train_data": str(data.resolve()), "lang_dir": str(lang.resolve())})
    (exp / "task.yaml").write_text(yaml.safe_dump(asdict(task)))
    save_checkpoint(exp / "model.pt", {"model": model.state_dict()})
    return exp


def tts_config(lang: Path, style_exp: Path, steps: int) -> dict:
    return {
        "model": {"name": "fastspeech_style", "hidden": 16, "filter_size": 32, "heads": 2, "encoder_layers": 1,
                  "decoder_layers": 1, "kernel_size": 3, "dropout": 0.0, "cond_dim": 8, "variance_filter": 16,
                  "style": {"type": "vector", "dim": 24}},
        "data": {"dataset": "tts", "feats": True, "cmvn": None, "factors": ["emotion", "gender", "language"],
                 "max_frames": 2000, "batch_size": 3,
                 "tts": {"phone_vocab": str(lang / "phones.txt"), "add_blank": True,
                         "style": {"type": "vector", "scp": "style.scp", "exp": str(style_exp), "mode": "subspaces"}}},
        "optim": {"name": "adam", "lr": 1e-3},
        "train": {"max_steps": steps, "log_interval": 1, "valid_interval": 2, "ckpt_interval": 2, "device": "cpu",
                  "progress": False, "average_best": 1},
        "valid": {"metric": "mel_l1", "mode": "min"},
    }


def train_tts(root: Path, data: Path, lang: Path, style_exp: Path, steps: int) -> Path:
    from parastyle.bin.train import main as train
    conf = root / "train_tts.yaml"
    conf.write_text(yaml.safe_dump(tts_config(lang, style_exp, steps)))
    exp = root / "exp_tts"
    rc = train(["--config", str(conf), "--train_data", str(data), "--valid_data", str(data), "--lang_dir", str(lang),
                "--exp", str(exp)])
    assert rc in (0, None)
    return exp
