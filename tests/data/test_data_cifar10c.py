"""CIFAR-10-C reader on small folders / tars with the official member names and array layout, and its download
through file:// URLs (never the network)."""

import hashlib
import io
import os
import tarfile

import numpy as np
import pytest
import torch

from probssl.data import DataError, cifar10c
from probssl.data.cifar10c import (
    CIFAR10C_CORRUPTIONS,
    CIFAR10C_MD5,
    CIFAR10C_STANDARD,
    CIFAR10C_URL,
    fetch_cifar10c,
    read_cifar10c,
)

PER = 20  # images per severity in the test files (10,000 officially)


def arrays(seed=0, severities=2):
    rng = np.random.default_rng(seed)
    images = rng.integers(0, 256, (severities * PER, 32, 32, 3), dtype=np.uint8)  # N, H, W, C
    labels = np.tile(rng.integers(0, 10, PER), severities).astype(np.uint8)  # test labels repeated per severity
    return images, labels


def npy_bytes(array, **kwargs) -> bytes:
    buf = io.BytesIO()
    np.save(buf, array, **kwargs)
    return buf.getvalue()


def write_tar(path, members: dict[str, bytes]):
    path.parent.mkdir(parents=True, exist_ok=True)
    with tarfile.open(path, "w") as tar:  # the official archive is an uncompressed tar
        for name, data in members.items():
            info = tarfile.TarInfo(name)
            if name.endswith("/"):  # a directory entry, as in the official archive
                info.type = tarfile.DIRTYPE
                tar.addfile(info)
                continue
            info.size = len(data)
            tar.addfile(info, io.BytesIO(data))
    return path


def official_members(images, labels):
    return {
        "CIFAR-10-C/labels.npy": npy_bytes(labels),
        "CIFAR-10-C/fog.npy": npy_bytes(images),
        "CIFAR-10-C/snow.npy": npy_bytes(images[::-1].copy()),
    }


def check(result, images, labels, severity):
    x, y = result
    rows = slice((severity - 1) * PER, severity * PER)
    assert x.shape == (PER, 3, 32, 32) and x.dtype == torch.uint8 and x.is_contiguous()
    assert torch.equal(x, torch.from_numpy(images[rows]).permute(0, 3, 1, 2))
    assert y.dtype == torch.int64 and y.tolist() == labels[rows].tolist()
    # pixel (row 1, col 2) of channel c comes from images[n, 1, 2, c]
    assert int(x[3, 2, 1, 2]) == int(images[rows][3, 1, 2, 2])


def test_read_extracted_folder(tmp_path):
    images, labels = arrays()
    for name, data in official_members(images, labels).items():
        (tmp_path / name).parent.mkdir(exist_ok=True)
        (tmp_path / name).write_bytes(data)
    for severity in (1, 2):
        check(read_cifar10c(tmp_path, "fog", severity, per_severity=PER), images, labels, severity)
    # the CIFAR-10-C folder itself works too, and numpy integers are valid severities
    check(read_cifar10c(tmp_path / "CIFAR-10-C", "snow", np.int64(2), per_severity=PER), images[::-1].copy(), labels, 2)
    with pytest.raises(DataError) as err:
        read_cifar10c(tmp_path, "frost", 1, per_severity=PER)
    assert str(tmp_path / "CIFAR-10-C" / "frost.npy") in str(err.value)
    with pytest.raises(DataError, match="too few"):
        read_cifar10c(tmp_path, "fog", 3, per_severity=PER)


def test_read_tar(tmp_path):
    images, labels = arrays(1)
    members = {"CIFAR-10-C/": b"", **official_members(images, labels)}
    path = write_tar(tmp_path / "CIFAR-10-C.tar", members)
    check(read_cifar10c(path, "fog", 2, per_severity=PER), images, labels, 2)
    check(read_cifar10c(path, "snow", 1, per_severity=PER), images[::-1].copy(), labels, 1)
    with pytest.raises(DataError) as err:
        read_cifar10c(path, "frost", 1, per_severity=PER)
    assert "CIFAR-10-C/frost.npy" in str(err.value) and str(path) in str(err.value)


@pytest.mark.parametrize("bad", ["../escape.npy", "/etc/evil.npy", "CIFAR-10-C/../../x.npy"])
def test_tar_with_unsafe_member_refused(tmp_path, bad):
    images, labels = arrays()
    path = write_tar(tmp_path / "CIFAR-10-C.tar", {**official_members(images, labels), bad: b"x"})
    with pytest.raises(DataError, match="unsafe path"):
        read_cifar10c(path, "fog", 1, per_severity=PER)


def test_unknown_corruption_and_bad_severity(tmp_path):
    with pytest.raises(DataError) as err:
        read_cifar10c(tmp_path, "gaussian_noize", 1)
    assert "gaussian_noise" in str(err.value) and "zoom_blur" in str(err.value) and "saturate" in str(err.value)
    for severity in (0, 1.0, True):
        with pytest.raises(DataError, match="severity"):
            read_cifar10c(tmp_path, "fog", severity)
    assert len(CIFAR10C_STANDARD) == 15 and len(set(CIFAR10C_CORRUPTIONS)) == 19
    assert set(CIFAR10C_CORRUPTIONS) - set(CIFAR10C_STANDARD) == {
        "speckle_noise",
        "gaussian_blur",
        "spatter",
        "saturate",
    }


class _Evil:
    def __init__(self, target):
        self.target = target

    def __reduce__(self):
        return (os.system, (f"touch {self.target}",))


def test_wrong_or_malicious_arrays_refused(tmp_path):
    marker = tmp_path / "pwned"
    images, labels = arrays()
    evil = npy_bytes(np.array([_Evil(str(marker))], dtype=object), allow_pickle=True)
    cases = {
        "images object": {"CIFAR-10-C/labels.npy": npy_bytes(labels), "CIFAR-10-C/fog.npy": evil},
        "labels object": {"CIFAR-10-C/labels.npy": evil, "CIFAR-10-C/fog.npy": npy_bytes(images)},
        "NCHW images": {
            "CIFAR-10-C/labels.npy": npy_bytes(labels),
            "CIFAR-10-C/fog.npy": npy_bytes(images.transpose(0, 3, 1, 2).copy()),
        },
        "labels out of range": {
            "CIFAR-10-C/labels.npy": npy_bytes(labels + 10),
            "CIFAR-10-C/fog.npy": npy_bytes(images),
        },
        "truncated": {"CIFAR-10-C/labels.npy": npy_bytes(labels), "CIFAR-10-C/fog.npy": npy_bytes(images)[:-100]},
    }
    for i, members in enumerate(cases.values()):
        path = write_tar(tmp_path / f"case{i}.tar", members)
        with pytest.raises(DataError) as err:
            read_cifar10c(path, "fog", 2, per_severity=PER)
        assert str(path) in str(err.value)
    assert not marker.exists()
    (tmp_path / "not.tar").write_bytes(b"this is not a tar file at all" * 40)
    with pytest.raises(DataError, match="tar"):
        read_cifar10c(tmp_path / "not.tar", "fog", 1)


def served_tar(tmp_path, monkeypatch, members=None):
    """A small CIFAR-10-C.tar in the official layout on a 'server' folder; CIFAR10C_URL / MD5 point at it."""
    images, labels = arrays(3)
    source = write_tar(tmp_path / "server" / "CIFAR-10-C.tar", members or official_members(images, labels))
    monkeypatch.setattr(cifar10c, "CIFAR10C_URL", source.as_uri())
    monkeypatch.setattr(cifar10c, "CIFAR10C_MD5", hashlib.md5(source.read_bytes()).hexdigest())
    return images, labels


def test_fetch_downloads_the_tar_md5_checked_and_reads_it_in_place(tmp_path, monkeypatch):
    root = tmp_path / "root"
    with pytest.raises(DataError) as err:  # the official URL and MD5, before any patching
        fetch_cifar10c(root)
    msg = str(err.value)
    assert str(root / "cifar10c" / "CIFAR-10-C.tar") in msg and CIFAR10C_MD5 in msg and CIFAR10C_URL in msg
    assert "download=True" in msg and "\n" not in msg
    images, labels = served_tar(tmp_path, monkeypatch)
    path = fetch_cifar10c(root, download=True)
    assert path == root / "cifar10c" / "CIFAR-10-C.tar"
    assert path.read_bytes() == (tmp_path / "server" / "CIFAR-10-C.tar").read_bytes()
    assert sorted(p.name for p in path.parent.iterdir()) == ["CIFAR-10-C.tar"]  # nothing extracted, no temp file
    check(read_cifar10c(path, "fog", 2, per_severity=PER), images, labels, 2)
    monkeypatch.setattr(cifar10c, "CIFAR10C_URL", (tmp_path / "gone.tar").as_uri())
    assert fetch_cifar10c(root) == path  # verified on disk: no download needed


def test_fetch_with_the_wrong_md5_is_one_error_and_leaves_nothing(tmp_path, monkeypatch):
    served_tar(tmp_path, monkeypatch)
    monkeypatch.setattr(cifar10c, "CIFAR10C_MD5", "0" * 32)
    root = tmp_path / "root"
    with pytest.raises(DataError) as err:
        fetch_cifar10c(root, download=True)
    msg = str(err.value)
    assert "CIFAR-10-C.tar" in msg and "0" * 32 in msg and cifar10c.CIFAR10C_URL in msg and "\n" not in msg
    assert list((root / "cifar10c").iterdir()) == []  # no partial or temporary file


def test_fetch_prefers_an_extracted_folder_and_refuses_a_corrupt_tar(tmp_path, monkeypatch):
    images, labels = served_tar(tmp_path, monkeypatch)
    root = tmp_path / "root"
    (root / "cifar10c").mkdir(parents=True)
    (root / "cifar10c" / "CIFAR-10-C.tar").write_bytes(b"a truncated copy")
    with pytest.raises(DataError, match="corrupt") as err:
        fetch_cifar10c(root, download=True)
    assert (root / "cifar10c" / "CIFAR-10-C.tar").read_bytes() == b"a truncated copy"  # never replaced
    assert "Delete it" in str(err.value)
    folder = root / "cifar10c" / "CIFAR-10-C"
    folder.mkdir()
    for name, data in official_members(images, labels).items():
        (root / "cifar10c" / name).write_bytes(data)
    assert fetch_cifar10c(root) == folder
    check(read_cifar10c(folder, "snow", 1, per_severity=PER), images[::-1].copy(), labels, 1)


@pytest.mark.parametrize("link", [tarfile.SYMTYPE, tarfile.LNKTYPE])
def test_a_fetched_tar_with_a_link_member_is_refused(tmp_path, monkeypatch, link):
    """A tar whose fog.npy is a link (to a file outside, or to another member) passes its MD5 check when the MD5 is
    its own, but the reader refuses the member: nothing is followed or written."""
    images, labels = arrays(4)
    source = write_tar(tmp_path / "server" / "CIFAR-10-C.tar", {"CIFAR-10-C/labels.npy": npy_bytes(labels)})
    with tarfile.open(source, "a") as tar:
        info = tarfile.TarInfo("CIFAR-10-C/fog.npy")
        info.type, info.linkname = link, "/etc/passwd" if link == tarfile.SYMTYPE else "CIFAR-10-C/labels.npy"
        tar.addfile(info)
    monkeypatch.setattr(cifar10c, "CIFAR10C_URL", source.as_uri())
    monkeypatch.setattr(cifar10c, "CIFAR10C_MD5", hashlib.md5(source.read_bytes()).hexdigest())
    path = fetch_cifar10c(tmp_path / "root", download=True)
    with pytest.raises(DataError, match="not a regular file") as err:
        read_cifar10c(path, "fog", 1, per_severity=PER)
    assert str(path) in str(err.value)
