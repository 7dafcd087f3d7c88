"""A new dataset, registered from this one file without editing probssl/, then trained and evaluated."""

import pytest
import torch

from probssl.config import ConfigError, load_config
from probssl.data import DatasetFamily, ImageDataset, list_datasets, load_dataset, register_dataset
from probssl.evaluation import evaluate_run
from probssl.train import Trainer


def _stripes(n: int, seed: int) -> ImageDataset:
    """Two classes of 12x12 grey images: horizontal vs vertical stripes, with noise."""
    g = torch.Generator().manual_seed(seed)
    labels = torch.arange(n) % 2
    base = (torch.arange(12) % 4 < 2).float()
    horizontal, vertical = base[:, None].expand(12, 12), base[None, :].expand(12, 12)
    images = torch.where(labels[:, None, None] == 0, horizontal, vertical) + 0.3 * torch.rand(n, 12, 12, generator=g)
    images = (images.clamp(0, 1) * 255).to(torch.uint8)[:, None]
    return ImageDataset(images, labels.long(), ("horizontal", "vertical"), "test-stripes")


def _locate(data_dir, download):
    return ("stripes", 1)  # generated: nothing on disk; the tuple identifies the content for the cache


def _decode(source):
    return _stripes(200, 0), None, _stripes(60, 1)


if "test-stripes" not in list_datasets():
    register_dataset(DatasetFamily("test-stripes", _locate, _decode, description="stripes", aliases=("stripes12",)))


def test_the_dataset_loads_by_name_and_alias():
    splits = load_dataset("stripes12", val_fraction=0.1)
    assert splits.name == "test-stripes" and splits.image_shape == (1, 12, 12)
    assert len(splits.train) == 180 and len(splits.val) == 20 and len(splits.test) == 60


def test_a_config_names_it_and_trains_and_evaluates_on_it(tmp_path):
    overrides = ["data.name=test-stripes", "train.epochs=2", "train.batch_size=32", "train.progress=false"]
    config = load_config("simclr-digits", overrides=overrides)
    Trainer(config, tmp_path / "run").fit()
    metrics = evaluate_run(tmp_path / "run", mode="quick", ood=[])
    assert metrics["splits"]["dataset"] == "test-stripes" and metrics["splits"]["test"] == 60
    assert metrics["linear_acc"] > 0.6  # two easy classes


def test_an_unknown_name_is_refused_when_the_config_is_built():
    with pytest.raises(ConfigError, match="Did you mean 'test-stripes'"):
        load_config(overrides=["data.name=test-strips"])
