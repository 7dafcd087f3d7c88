"""report.html: the report as one self-contained page (plots embedded, sortable tables, run files one click
away, run text escaped), checked as text and in headless Chromium."""

import base64
import json
import os
import re
import shutil
import subprocess
import sys
from html import escape, unescape
from pathlib import Path

import numpy as np
import pytest
from PIL import Image

from probssl.config import load_config
from probssl.report import write_report
from probssl.report.html import markdown_to_html

CHROMIUM = shutil.which("chromium") or shutil.which("chromium-browser")
TINY = ["train.epochs=2", "train.progress=false", "data.train_subset=256", "train.batch_size=64"]
HOSTILE_DIR = "<img src=x onerror=alert(1)>|b"
HOSTILE_METHOD = "<script>alert(1)</script>"
HOSTILE_CONFIG = "</pre><script>alert(2)</script>"


def _img_srcs(page: str) -> list[str]:
    return re.findall(r'<img src="([^"]*)"', page)


def test_every_plot_is_embedded_and_the_page_needs_no_other_file(real_eval, tmp_path):
    payload = write_report(real_eval, tmp_path / "rep", title="T")
    out = tmp_path / "rep"
    page, md = (out / "report.html").read_text(), (out / "report.md").read_text()
    srcs = _img_srcs(page)
    assert len(srcs) == len(payload["plots"]) >= 9  # every plot and image grid, once
    for rel in payload["plots"].values():
        uri = "data:image/png;base64," + base64.b64encode((out / rel).read_bytes()).decode()
        assert uri in srcs, rel
    assert not re.search(r"<(link|iframe|object|embed)\b|\bsrc=\"(?!data:)|href=\"(?!#)|url\(", page)
    assert page.count("<script>") == 1  # the inline sorter, nothing loaded
    # the same content as report.md: every heading, every table row, every mean ± s.e.
    for heading in re.findall(r"^## (.+)$", md, flags=re.M):
        assert f">{escape(heading)}</h2>" in page, heading
    rows = [x for x in md.splitlines() if x.startswith("|") and not x.startswith("|---")]
    assert page.count("<tr>") == len(rows) and 'class="sortable"' in page
    for value in re.findall(r"-?\d[\d.]* ± [\d.]+", md):
        assert value in page
    # the config one click away (these runs have no config.yaml: the one stored in eval.json)
    config = re.search(r"<details><summary>config \(from eval.json\)</summary><pre>(.*?)</pre>", page, re.S)
    assert config and "name: vsimclr" in config.group(1) and "train_subset: 200" in config.group(1)
    assert "environment.json: not in the run folder" in page


def _hostile_run(root: Path) -> Path:
    run = root / HOSTILE_DIR
    run.mkdir()
    config = load_config("simclr-digits").to_dict()
    m = {
        "run": {"method": HOSTILE_METHOD, "seed": 0},
        "config": config,
        "splits": {"dataset": "digits", "train": 10, "val": 5, "test": 5},
        "summary": {"linear_acc": 0.5},
        "probes": {"linear": {"test_acc": 0.5, "selected": {"weight_decay": 0.0}}},
    }
    (run / "eval.json").write_text(json.dumps(m))
    (run / "config.yaml").write_text(f"data:\n  name: '{HOSTILE_CONFIG}'\n")
    (run / "environment.json").write_text(json.dumps({"host": "<b>bold</b> & co"}))
    return run


def test_text_from_the_run_cannot_inject_markup(tmp_path):
    write_report([_hostile_run(tmp_path)], tmp_path / "rep", title="<i>T</i>")
    page = (tmp_path / "rep" / "report.html").read_text()
    for raw in (HOSTILE_DIR, HOSTILE_METHOD, HOSTILE_CONFIG, "<b>bold</b>", "<i>T</i>"):
        assert raw not in page, raw
    assert escape("onerror=alert(1)>") in page and escape(HOSTILE_CONFIG) in page
    assert escape('"host": "<b>bold</b> & co"') in page and "<title>&lt;i&gt;T&lt;/i&gt;</title>" in page
    assert page.count("<script>") == 1 and "<img" not in page
    runs_table = re.search(r'<h2 id="runs">.*?<thead><tr>(.*?)</tr></thead>\s*<tbody>\s*<tr>(.*?)</tr>', page, re.S)
    # the "|" in the folder name stays inside its cell
    assert runs_table.group(1).count("<th>") == runs_table.group(2).count("<td>") == 9
    assert "|b</code>" in runs_table.group(2)


def test_markdown_subset_and_images_outside_the_report(tmp_path):
    (tmp_path / "a.png").write_bytes(b"\x89PNG fake")
    (tmp_path.parent / "outside.png").write_bytes(b"\x89PNG secret")
    blocks = markdown_to_html(
        ["## 1. Title", "", "some **bold** and *it* and `a*b*c`", "more", "", "- x", "- y", "", "![a](a.png)"]
        + ["", "![b](../outside.png)", "", "| h | g |", "|---|---|", "| a\\|b | 2 |"],
        tmp_path,
    )
    assert blocks[0] == '<h2 id="1-title">1. Title</h2>'
    assert blocks[1] == "<p>some <strong>bold</strong> and <em>it</em> and <code>a*b*c</code> more</p>"
    assert blocks[2] == "<ul><li>x</li><li>y</li></ul>"
    assert 'src="data:image/png;base64,' + base64.b64encode(b"\x89PNG fake").decode() in blocks[3]
    assert "missing plot: ../outside.png" in blocks[4] and "<img" not in blocks[4]
    assert "<td>a|b</td><td>2</td>" in blocks[5]


# ----------------------------------------------------------------------------- in a browser

# Appended to a copy of the page: once everything has loaded, record what rendered, and sort a table.
PROBE = """<script>
window.addEventListener("load", function () {
  var col = function (t, i) { return Array.from(t.tBodies[0].rows).map(function (r) { return r.cells[i].textContent; }); };
  var sorted = null;
  document.querySelectorAll("table.sortable").forEach(function (t) {
    var i = Array.from(t.tHead.rows[0].cells).findIndex(function (h) { return h.textContent === "mean"; });
    if (sorted || i < 0 || t.tBodies[0].rows.length < 2) return;
    t.tHead.rows[0].cells[i].click(); var up = col(t, i);
    t.tHead.rows[0].cells[i].click(); sorted = {up: up, down: col(t, i)};
  });
  var pre = document.createElement("pre"); pre.id = "probe";
  pre.textContent = JSON.stringify({
    images: Array.from(document.images).map(function (img) {
      var r = img.getBoundingClientRect();
      return {ok: img.complete && img.naturalWidth > 0, w: img.naturalWidth, box: [r.left, r.top + scrollY, r.right, r.bottom + scrollY]};
    }),
    details: Array.from(document.querySelectorAll("details > summary")).map(function (s) { return s.textContent; }),
    italics: document.querySelectorAll("i").length, scripts: document.scripts.length, text: document.body.innerText,
    sorted: sorted,
  });
  document.body.appendChild(pre);
});
</script>"""


@pytest.fixture(scope="module")
def html_report(tmp_path_factory):
    """A tiny trained and quickly evaluated run with markup in its name, reported by `probssl report`."""
    from probssl.evaluation import evaluate_run
    from probssl.train import Trainer

    root = tmp_path_factory.mktemp("html")
    run = root / "run <i>&amp;x"
    Trainer(load_config("simclr-digits", overrides=TINY), run).fit()
    evaluate_run(run, mode="quick", ood=["noise"])
    cmd = [sys.executable, "-m", "probssl", "report", str(run), "--out", str(root / "rep")]
    done = subprocess.run(cmd, capture_output=True, text=True, timeout=300, env={**os.environ, "OMP_NUM_THREADS": "1"})
    assert done.returncode == 0, done.stderr
    assert "report.html" in done.stdout
    return root / "rep"


def _chromium(args: list[str], tmp: Path) -> str:
    cmd = [CHROMIUM, "--headless", "--no-sandbox", "--disable-gpu", f"--user-data-dir={tmp / 'profile'}"]
    done = subprocess.run([*cmd, "--window-size=1200,3000", *args], capture_output=True, text=True, timeout=180)
    assert done.returncode == 0, done.stderr[-2000:]
    return done.stdout


@pytest.mark.slow
@pytest.mark.skipif(CHROMIUM is None, reason="needs Chromium for the browser check (Debian: apt-get install chromium)")
def test_the_page_renders_in_headless_chromium(html_report, tmp_path):
    page = (html_report / "report.html").read_text()
    (tmp_path / "probe.html").write_text(page.replace("</body>", PROBE + "</body>"))
    dom = _chromium(["--dump-dom", (tmp_path / "probe.html").as_uri()], tmp_path)
    probe = json.loads(unescape(re.search(r'<pre id="probe">(.*?)</pre>', dom, re.S).group(1)))
    plots = json.loads((html_report / "metrics.json").read_text())["plots"]
    assert {"spectrum", "uncertainty_ood", "selective", "loss", "monitors"} <= set(plots)
    assert len(probe["images"]) == len(plots) and all(i["ok"] and i["w"] > 300 for i in probe["images"])
    assert probe["details"] == ["config.yaml", "environment.json", "status.json"]
    assert probe["italics"] == 0 and probe["scripts"] == 2 and "run <i>&amp;x" in probe["text"]  # shown as text
    up, down = (list(map(float, probe["sorted"][k])) for k in ("up", "down"))
    assert up == sorted(up) and down == sorted(up, reverse=True) and up != down

    _chromium([f"--screenshot={tmp_path / 'shot.png'}", (html_report / "report.html").as_uri()], tmp_path)
    shot = np.asarray(Image.open(tmp_path / "shot.png").convert("RGB")).astype(int)
    assert shot.shape == (3000, 1200, 3) and (shot.min(-1) < 200).mean() > 0.02  # not a blank page
    seen = [i["box"] for i in probe["images"] if i["box"][3] <= 3000]
    assert seen  # at least one plot in the screenshot, drawn: many colours and coloured curves
    for left, top, right, bottom in seen:
        crop = shot[int(top) + 1 : int(bottom) - 1, int(left) + 1 : int(right) - 1]
        assert len(np.unique(crop.reshape(-1, 3), axis=0)) > 100
        assert ((crop.max(-1) - crop.min(-1)) > 80).sum() > 200
