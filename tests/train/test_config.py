"""Config loading: YAML + defaults + dotted overrides; unknown keys are errors listing valid keys."""
from __future__ import annotations

import pytest
import yaml

from parastyle.train.config import ConfigError, load_config, parse_overrides


def _write(tmp_path, conf):
    p = tmp_path / "c.yaml"
    p.write_text(yaml.safe_dump(conf))
    return p


def test_file_and_overrides(tmp_path):
    p = _write(tmp_path, {"model": {"name": "multitask_ce", "encoder": {"name": "tdnn", "hidden": 32}},
                          "optim": {"lr": 0.002}})
    conf = load_config(p, ["--optim.lr", "1e-3", "--train.amp=bf16", "--data.factors", "[emotion, gender]",
                           "--model.encoder.hidden", "64", "--valid.patience", "null", "--train.grad_clip", "none"])
    assert conf["optim"]["lr"] == pytest.approx(1e-3) and isinstance(conf["optim"]["lr"], float)
    assert conf["train"]["amp"] == "bf16"
    assert conf["data"]["factors"] == ["emotion", "gender"]
    assert conf["model"]["encoder"] == {"name": "tdnn", "hidden": 64}
    assert conf["valid"]["patience"] is None
    assert conf["optim"]["name"] == "adam"        # default kept
    assert conf["train"]["max_steps"] == 1000


def test_unknown_override_lists_valid_keys(tmp_path):
    p = _write(tmp_path, {"model": {"name": "multitask_ce"}})
    with pytest.raises(ConfigError) as ei:
        load_config(p, ["--optim.lrr", "1"])
    assert "optim.lrr" in str(ei.value) and "optim.lr" in str(ei.value) and "train.max_steps" in str(ei.value)
    with pytest.raises(ConfigError, match="trian"):
        load_config(p, ["--trian.max_steps", "3"])


def test_unknown_key_in_file_and_bad_values(tmp_path):
    with pytest.raises(ConfigError, match="train.max_step"):
        load_config(_write(tmp_path, {"model": {"name": "x"}, "train": {"max_step": 3}}))
    with pytest.raises(ConfigError, match="valid.mode"):
        load_config(_write(tmp_path, {"model": {"name": "x"}, "valid": {"mode": "up"}}))
    with pytest.raises(ConfigError, match="no value"):
        parse_overrides(["--optim.lr"])


def test_config_differences_and_hash(tmp_path):
    from parastyle.train.config import config_differences, config_hash
    p = _write(tmp_path, {"model": {"name": "multitask_ce", "encoder": {"name": "tdnn", "hidden": 32}}})
    base = load_config(p)
    same_model = load_config(p, ["--train.max_steps", "50", "--train.log_interval", "7"])
    other = load_config(p, ["--model.encoder.hidden", "64", "--data.max_frames", "100", "--train.max_steps", "50"])
    inc, comp = config_differences(dict(base, _run={"device": "cpu"}), same_model)
    assert inc == [] and comp == [("train.log_interval", 20, 7), ("train.max_steps", 1000, 50)]
    assert config_hash(base) == config_hash(same_model)
    inc, comp = config_differences(base, other)
    assert inc == [("data.max_frames", 6000, 100), ("model.encoder.hidden", 32, 64)]
    assert comp == [("train.max_steps", 1000, 50)]
    assert config_hash(base) != config_hash(other)
    # a key present on one side only
    extra = load_config(p, ["--model.encoder.dropout", "0.1"])
    assert config_differences(base, extra)[0] == [("model.encoder.dropout", "<unset>", 0.1)]
    # a key added to the defaults after the exp was trained, at its default value, is compatible
    old = dict(base, data={k: v for k, v in base["data"].items() if k != "valid_max_frames"},
               train={k: v for k, v in base["train"].items() if k != "grad_clip"})
    inc, comp = config_differences(old, base)
    assert inc == [] and [k for k, _, _ in comp] == ["data.valid_max_frames", "train.grad_clip"]
    assert config_differences(old, load_config(p, ["--train.grad_clip", "1.0"]))[0] == [("train.grad_clip", "<unset>", 1.0)]
    assert config_hash(old) == config_hash(base)
    assert config_hash(load_config(p, ["--train.grad_clip", "5.0"])) == config_hash(base)     # the default


def test_config_hash_ignores_key_order_even_with_an_order_keeping_yaml():
    """opensmile's dependencies import oyaml, which makes PyYAML keep dict insertion order whatever
    sort_keys says; the config hash (exp identity) must not change with it."""
    from parastyle.train.config import config_hash, load_config
    conf = load_config(None, [("model", {"name": "multitask_ce", "encoder": {"name": "tdnn", "hidden": 8}}),
                              ("optim.lr", 0.01), ("train.max_steps", 6)])
    def reversed_order(v):
        return {k: reversed_order(v[k]) for k in reversed(list(v))} if isinstance(v, dict) else v
    before = config_hash(conf)
    assert config_hash(reversed_order(conf)) == before
    pytest.importorskip("oyaml")            # a dependency of opensmile (pinned): patches yaml on import
    assert config_hash(reversed_order(conf)) == before
    assert config_hash(conf) == before
