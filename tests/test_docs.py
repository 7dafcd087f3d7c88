"""The documentation site builds with --strict (every warning an error) and its key pages exist and render.

The build needs the docs extra (`pip install -c constraints.txt -e '.[docs]'`, done by `make docs`); without it the
build tests skip, saying so (CI runs `make docs` as its own step anyway). The browser check needs Debian's
`chromium` at /usr/bin/chromium and skips without it. With PROBSSL_DOCS_SITE=DIR the checks read an already built
site (CI sets it to the site/ that `make docs` built).
"""

import os
import re
import subprocess
import sys
from pathlib import Path

import pytest

ROOT = Path(__file__).resolve().parents[1]
CHROMIUM = Path("/usr/bin/chromium")


def own_methods() -> list[str]:
    """probssl's own registered methods: a plugin registered in this process (tests/plugins) has no page."""
    import probssl
    from probssl.methods import method_class

    return [n for n in probssl.list_methods() if method_class(n).__module__.startswith("probssl.")]


def test_every_registered_method_has_a_page_in_the_nav():

    nav = (ROOT / "mkdocs.yml").read_text()
    for name in own_methods():
        page = ROOT / "docs" / "methods" / f"{name}.md"
        assert page.exists(), f"docs/methods/{name}.md is missing"
        assert f"<!-- probssl:method {name} -->" in page.read_text(), f"{page} lacks its generated facts"
        assert f"methods/{name}.md" in nav, f"methods/{name}.md is not in mkdocs.yml's nav"


def test_getting_started_shows_the_readmes_two_commands():
    readme = (ROOT / "README.md").read_text()
    page = (ROOT / "docs" / "getting-started.md").read_text()
    for command in ("make demo", "make test"):
        line = next(ln for ln in readme.splitlines() if ln.strip().startswith(command))
        assert line in page, f"docs/getting-started.md no longer matches the README's line {line.strip()!r}"


@pytest.fixture(scope="module")
def site(tmp_path_factory):
    built = os.environ.get("PROBSSL_DOCS_SITE")  # CI: check the site `make docs` just built instead of rebuilding
    if built:
        assert (Path(built) / "index.html").is_file(), f"PROBSSL_DOCS_SITE={built} holds no built site"
        return Path(built).resolve()
    pytest.importorskip(
        "mkdocs", reason="the docs extra is not installed (pip install -c constraints.txt -e '.[docs]')"
    )
    pytest.importorskip("mkdocstrings", reason="the docs extra is not installed")
    out = tmp_path_factory.mktemp("site")
    env = {**os.environ, "NO_MKDOCS_2_WARNING": "1", "OMP_NUM_THREADS": "1"}
    result = subprocess.run(
        [sys.executable, "-m", "mkdocs", "build", "--strict", "--site-dir", str(out)],
        cwd=ROOT,
        env=env,
        capture_output=True,
        text=True,
        timeout=600,
    )
    assert result.returncode == 0, result.stdout[-3000:] + result.stderr[-3000:]
    return out


def test_the_site_has_its_key_pages(site):

    pages = [
        "index.html",
        "getting-started.html",
        "concepts.html",
        "datasets.html",
        "evaluation.html",
        "uncertainty.html",
        "benchmarks.html",
        "extending.html",
        "tutorials/train-on-folder.html",
        "tutorials/screen-by-uncertainty.html",
        "tutorials/scl-bits.html",
        "api/probssl.html",
        "api/methods.html",
        "results/throughput.json",
    ]
    pages += [f"methods/{name}.html" for name in own_methods()]
    missing = [p for p in pages if not (site / p).is_file()]
    assert not missing, missing
    vsimclr = (site / "methods" / "vsimclr.html").read_text()
    assert "probssl.methods.vsimclr.VSimCLRConfig" in vsimclr  # the generated facts
    assert "vsimclr-paper-mnist" in vsimclr  # the generated preset table
    assert "gaussian-bound" in vsimclr
    # The tutorial pages show their scripts (snippet includes), and the API pages their docstrings.
    assert "ood_inputs" in (site / "tutorials" / "screen-by-uncertainty.html").read_text()
    assert "Rebuild a trained method from the latest checkpoint" in (site / "api" / "train.html").read_text()
    # The existing pages' links to benchmarks/results point into the site.
    assert 'href="results/throughput.json"' in (site / "benchmarks.html").read_text()


@pytest.mark.skipif(not CHROMIUM.exists(), reason="Debian's chromium is not installed (apt-get install -y chromium)")
def test_a_page_renders_in_headless_chromium(site, tmp_path):
    page = site / "methods" / "scl.html"
    env = {**os.environ, "HOME": str(tmp_path)}  # chromium writes its profile under HOME
    result = subprocess.run(
        [str(CHROMIUM), "--headless", "--no-sandbox", "--disable-gpu", f"--user-data-dir={tmp_path / 'profile'}",
         "--dump-dom", page.as_uri()],
        capture_output=True, text=True, timeout=120, env=env,
    )  # fmt: skip
    assert result.returncode == 0, result.stderr[-2000:]
    dom = result.stdout
    title = re.search(r"<title>(.*?)</title>", dom, re.S)
    assert title and "SCL" in title.group(1), title
    assert "scl-bernoulli-digits" in dom  # the generated preset table, as the browser sees the DOM
    assert "compression_ratio" in dom
    # The theme's stylesheet loaded from the static folder (relative path, no server).
    css = re.search(r'href="(\.\./assets/stylesheets/main\.[^"]+\.css)"', dom)
    assert css and (page.parent / css.group(1)).resolve().is_file()


def test_built_site_is_ignored_by_git():
    assert "site/" in (ROOT / ".gitignore").read_text().splitlines()
