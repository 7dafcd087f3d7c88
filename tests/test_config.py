import pytest

from probssl.config import (
    Config,
    ConfigError,
    apply_overrides,
    from_dict,
    list_presets,
    load_config,
    load_preset,
    parse_override,
    to_yaml,
)


def test_defaults_round_trip_through_yaml():
    import yaml

    config = Config()
    assert from_dict(yaml.safe_load(to_yaml(config))).to_dict() == config.to_dict()


def test_unknown_key_names_valid_keys_and_suggests():
    with pytest.raises(ConfigError) as err:
        from_dict({"train": {"epoch": 3}})
    msg = str(err.value)
    assert "train.epoch" in msg and "Did you mean 'epochs'" in msg and "batch_size" in msg


def test_unknown_section():
    with pytest.raises(ConfigError, match="Unknown config key 'trian'.*Did you mean 'train'"):
        from_dict({"trian": {}})


@pytest.mark.parametrize(
    "override,match",
    [
        ("train.epochs=abc", "expected an integer"),
        ("train.epochs=1.5", "expected an integer"),
        ("train.lr=true", "expected a number"),
        ("model.channels_last=3", "expected true or false"),
        ("train=3", "is a section"),
        ("train.epochs", "must look like"),
    ],
)
def test_wrong_types_are_errors(override, match):
    with pytest.raises(ConfigError, match=match):
        apply_overrides(Config(), [override])


def test_overrides_parse_yaml_values():
    config = apply_overrides(
        Config(),
        [
            "train.lr=1e-3",
            "train.epochs=7",
            "augment.crop_scale=[0.2, 1]",
            "data.train_subset=null",
            "train.max_steps=5",
        ],
    )
    assert config.train.lr == pytest.approx(1e-3) and isinstance(config.train.lr, float)
    assert config.train.epochs == 7
    assert config.augment.crop_scale == [0.2, 1.0]
    assert config.data.train_subset is None and config.train.max_steps == 5
    assert parse_override("a.b=x=y") == (["a", "b"], "x=y")


def test_every_preset_loads_and_is_distinct():
    names = list_presets()
    for required in ("simclr-digits", "vsimclr-digits", "simclr-mnist", "vsimclr-mnist"):
        assert required in names
    dicts = [load_preset(n).to_dict() for n in names]
    assert all(dicts[i] != dicts[j] for i in range(len(dicts)) for j in range(i + 1, len(dicts)))


def test_unknown_preset_suggests():
    with pytest.raises(ConfigError, match="Did you mean 'simclr-digits'"):
        load_preset("simclr-digit")


def test_config_file_then_overrides(tmp_path):
    f = tmp_path / "c.yaml"
    f.write_text("train:\n  epochs: 3\n  lr: 0.5\n")
    config = load_config("simclr-digits", f, ["train.epochs=4"])
    assert config.train.epochs == 4 and config.train.lr == 0.5 and config.data.name == "digits"
