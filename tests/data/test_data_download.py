"""verify_file / download_file with file:// URLs (never the network), and resolve_data_dir."""

import gzip
import hashlib
import struct
from pathlib import Path

import numpy as np
import pytest

from probssl.data import DataError, download_file, load_dataset, resolve_data_dir, sources, verify_file


def md5(data: bytes) -> str:
    return hashlib.md5(data).hexdigest()


@pytest.fixture
def served(tmp_path):
    """A 'server' directory holding one file, and its file:// URL."""
    src = tmp_path / "server"
    src.mkdir()
    payload = bytes(range(256)) * 4000  # ~1 MB: several read chunks
    (src / "blob.bin").write_bytes(payload)
    return payload, (src / "blob.bin").as_uri()


def leftovers(directory: Path) -> list[str]:
    return sorted(p.name for p in directory.iterdir()) if directory.exists() else []


def test_verify_file(tmp_path):
    path = tmp_path / "f.bin"
    path.write_bytes(b"hello")
    verify_file(path, md5(b"hello"))
    verify_file(str(path), md5(b"hello").upper())
    with pytest.raises(DataError) as err:
        verify_file(path, "0" * 32)
    msg = str(err.value)
    assert str(path) in msg and "0" * 32 in msg and md5(b"hello") in msg
    assert "expected MD5" in msg and "Delete it" in msg and "\n" not in msg
    assert path.read_bytes() == b"hello"  # never deleted or touched
    with pytest.raises(DataError, match="does not exist"):
        verify_file(tmp_path / "nope.bin", "0" * 32)


def test_first_url_broken_second_good(tmp_path, served):
    payload, url = served
    dest = tmp_path / "cache" / "sub" / "blob.bin"
    broken = (tmp_path / "server" / "missing.bin").as_uri()
    out = download_file([broken, url], dest, md5(payload))
    assert out == dest and dest.read_bytes() == payload
    assert leftovers(dest.parent) == ["blob.bin"]  # no temporary files left behind


def test_existing_good_file_is_not_downloaded_again(tmp_path, served):
    payload, _ = served
    dest = tmp_path / "blob.bin"
    dest.write_bytes(payload)
    assert download_file(["file:///definitely/not/there"], dest, md5(payload)) == dest


def test_existing_corrupt_file_is_not_overwritten(tmp_path, served):
    payload, url = served
    dest = tmp_path / "blob.bin"
    dest.write_bytes(b"user data")
    with pytest.raises(DataError, match="corrupt"):
        download_file([url], dest, md5(payload))
    assert dest.read_bytes() == b"user data"


def test_bad_checksum_source_leaves_nothing(tmp_path, served):
    payload, url = served
    dest = tmp_path / "cache" / "blob.bin"
    expected = md5(payload + b"different")
    with pytest.raises(DataError) as err:
        download_file([url], dest, expected)
    msg = str(err.value)
    assert "blob.bin" in msg and expected in msg and url in msg and md5(payload) in msg
    assert str(dest) in msg and "\n" not in msg
    assert not dest.exists()
    assert leftovers(dest.parent) == []


def test_all_urls_fail_lists_them(tmp_path):
    dest = tmp_path / "d" / "x.gz"
    urls = [(tmp_path / "a.gz").as_uri(), (tmp_path / "b.gz").as_uri(), "notaurl"]
    with pytest.raises(DataError) as err:
        download_file(urls, dest, "f" * 32)
    msg = str(err.value)
    assert all(u in msg for u in urls) and "f" * 32 in msg and "x.gz" in msg and str(dest) in msg
    assert not dest.exists() and leftovers(dest.parent) == []


def test_load_dataset_downloads_missing_files_from_mirror(tmp_path, monkeypatch):
    """download=True: missing MNIST files are fetched from the mirrors (file:// here)."""
    mirror = tmp_path / "mirror"
    mirror.mkdir()
    rng = np.random.default_rng(0)
    arrays = {
        "train-images-idx3-ubyte.gz": rng.integers(0, 256, (50, 28, 28), dtype=np.uint8),
        "train-labels-idx1-ubyte.gz": (np.arange(50) % 10).astype(np.uint8),
        "t10k-images-idx3-ubyte.gz": rng.integers(0, 256, (20, 28, 28), dtype=np.uint8),
        "t10k-labels-idx1-ubyte.gz": (np.arange(20) % 10).astype(np.uint8),
    }
    for name, arr in arrays.items():
        header = struct.pack(">I", 0x0800 | arr.ndim) + struct.pack(f">{arr.ndim}I", *arr.shape)
        (mirror / name).write_bytes(gzip.compress(header + arr.tobytes()))
        monkeypatch.setitem(sources.CHECKSUMS, f"mnist/{name}", md5((mirror / name).read_bytes()))
    dead = (tmp_path / "dead").as_uri() + "/"
    monkeypatch.setitem(sources.MIRRORS, "mnist", (dead, mirror.as_uri() + "/"))

    root = tmp_path / "root"
    with pytest.raises(DataError, match="downloading is disabled"):
        load_dataset("mnist", root, download=False)
    s = load_dataset("mnist", root, val_fraction=0.2)
    assert len(s.train) == 40 and len(s.val) == 10 and len(s.test) == 20
    assert sorted(p.name for p in (root / "mnist").iterdir()) == sorted(arrays)


def test_resolve_data_dir_precedence(tmp_path, monkeypatch):
    arg, env, xdg, home = (tmp_path / n for n in ("arg", "env", "xdg", "home"))
    monkeypatch.setenv("PROBSSL_DATA", str(env))
    monkeypatch.setenv("XDG_CACHE_HOME", str(xdg))
    monkeypatch.setenv("HOME", str(home))
    assert resolve_data_dir(arg) == arg
    assert resolve_data_dir(str(arg)) == arg
    assert resolve_data_dir() == env
    monkeypatch.setenv("PROBSSL_DATA", "")
    assert resolve_data_dir() == xdg / "probssl"
    monkeypatch.delenv("PROBSSL_DATA")
    assert resolve_data_dir(None) == xdg / "probssl"
    monkeypatch.setenv("XDG_CACHE_HOME", "relative/not/allowed")
    assert resolve_data_dir() == home / ".cache" / "probssl"
    monkeypatch.delenv("XDG_CACHE_HOME")
    assert resolve_data_dir() == home / ".cache" / "probssl"
    monkeypatch.setenv("PROBSSL_DATA", "~/data")
    assert resolve_data_dir() == home / "data"
    assert not (home / "data").exists()  # resolving never creates directories


@pytest.fixture
def http_server(tmp_path):
    """A local HTTP server (127.0.0.1 only) serving tmp_path/www, plus a socket that never answers."""
    import functools
    import http.server
    import socket
    import threading

    www = tmp_path / "www"
    www.mkdir()

    class Quiet(http.server.SimpleHTTPRequestHandler):
        def log_message(self, *args):
            pass

    server = http.server.ThreadingHTTPServer(("127.0.0.1", 0), functools.partial(Quiet, directory=str(www)))
    thread = threading.Thread(target=server.serve_forever, daemon=True)
    thread.start()
    # Accepts connections into its backlog but never replies: exercises the timeout.
    silent = socket.socket()
    silent.bind(("127.0.0.1", 0))
    silent.listen(1)
    try:
        yield www, f"http://127.0.0.1:{server.server_port}/", f"http://127.0.0.1:{silent.getsockname()[1]}/"
    finally:
        server.shutdown()
        server.server_close()
        silent.close()
        thread.join()


def test_http_404_then_mirror_and_timeout(tmp_path, http_server):
    www, base, silent = http_server
    payload = b"x" * 5000
    (www / "mirror").mkdir()
    (www / "mirror" / "f.gz").write_bytes(payload)
    dest = tmp_path / "out" / "f.gz"
    urls = [silent + "f.gz", base + "f.gz", base + "mirror/f.gz"]
    out = download_file(urls, dest, md5(payload), timeout=0.5)
    assert out.read_bytes() == payload
    with pytest.raises(DataError) as err:
        download_file([silent + "g.gz", base + "g.gz"], tmp_path / "out" / "g.gz", "a" * 32, timeout=0.5)
    msg = str(err.value)
    assert "HTTP 404" in msg and "timed out" in msg and "a" * 32 in msg
    assert sorted(p.name for p in (tmp_path / "out").iterdir()) == ["f.gz"]
