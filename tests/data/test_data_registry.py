"""Dataset names, the public surface of probssl.data."""

import pytest

import probssl.data as data
from probssl.data import DATASETS, DataError, load_dataset


def test_public_names():
    assert set(data.__all__) == {
        "DataError",
        "ImageDataset",
        "DataSplits",
        "UNLABELLED",
        "DATASETS",
        "DatasetFamily",
        "keep_classes",
        "list_datasets",
        "load_splits",
        "register_dataset",
        "to_float_images",
        "unregister_dataset",
        "resolve_data_dir",
        "load_dataset",
        "verify_file",
        "download_file",
    }
    assert DATASETS == (
        "digits",
        "mnist",
        "fashion-mnist",
        "cifar10",
        "cifar100",
        "folder",
        "unlabelled-folder",
        "manifest",
        "shards",
        "svhn",
        "stl10",
        "stl10-unlabeled",
        "tiny-imagenet",
        "caltech256",
        "celeba",
        "imagenet",
    )
    assert issubclass(DataError, Exception)


def test_unknown_name_lists_valid_names_and_suggests():
    with pytest.raises(DataError) as err:
        load_dataset("mnsit")
    msg = str(err.value)
    assert "'mnsit'" in msg and "Did you mean 'mnist'?" in msg
    assert all(name in msg for name in DATASETS)
    with pytest.raises(DataError) as err:
        load_dataset("qwerty")  # nothing close ("imagenet" would suggest "manifest")
    assert "Did you mean" not in str(err.value) and "cifar100" in str(err.value)
    with pytest.raises(DataError, match="Did you mean 'fashion-mnist'"):
        load_dataset("fashion-mnits")


def test_aliases(monkeypatch):
    from probssl.data.registry import canonical_name

    assert canonical_name(" Fashion_MNIST ") == "fashion-mnist"
    assert canonical_name("CIFAR-10") == "cifar10"
    assert canonical_name("cifar_100") == "cifar100"
