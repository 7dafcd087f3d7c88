"""OUT/report.html: the same report as report.md, as one self-contained page.

The page is rendered from the very Markdown lines that make report.md (so both always say the same), with
every plot embedded as a base64 PNG data URI, sortable tables (a few lines of inline JavaScript: click a
header), and each run's resolved config, environment and status in ``<details>`` blocks right after the
runs table. Nothing is loaded from the network or from other files. Every piece of text comes from the
runs (labels, folder names, config strings) and is HTML-escaped; the only markup on the page is what this
module writes itself.

Markdown understood (what the report's renderers write): ``#`` headings, pipe tables (``\\|`` is a literal
bar inside a cell), ``- `` lists, paragraphs, ``**bold**``, ``*italic*``, ```code``` and ``![alt](file)``
images, which must name a PNG inside the report folder.
"""

from __future__ import annotations

import base64
import json
import re
from html import escape
from pathlib import Path

import yaml

from probssl.report.format import slug

__all__ = ["markdown_to_html", "run_files_html", "write_html"]

# A code span or an image; the text between matches gets escaped and emphasis.
_INLINE = re.compile(r"`([^`]*)`|!\[([^\]]*)\]\(([^)\s]+)\)")
_STRONG = re.compile(r"\*\*(.+?)\*\*")
_EM = re.compile(r"(?<![\w*])\*(?![\s*])(.+?)(?<![\s*])\*(?![\w*])")
_CELL_BAR = re.compile(r"(?<!\\)\|")
_BLOCK_START = re.compile(r"#{1,6} |\||- ")

_STYLE = """
body{font-family:system-ui,-apple-system,"Segoe UI",sans-serif;max-width:1200px;margin:2em auto;padding:0 1em;
color:#222;line-height:1.45}
h1{border-bottom:2px solid #ddd;padding-bottom:.2em}h2{border-bottom:1px solid #eee;margin-top:2em}
nav ol{columns:2}.scroll{overflow-x:auto;margin:1em 0}
table{border-collapse:collapse;font-size:.9em}th,td{border:1px solid #ccc;padding:.3em .6em;text-align:left}
th{background:#f3f3f3;cursor:pointer;user-select:none;white-space:nowrap}
th[data-dir=asc]::after{content:" \\25B2"}th[data-dir=desc]::after{content:" \\25BC"}
tbody tr:nth-child(even){background:#fafafa}
figure{margin:1em 0}figure img{max-width:100%;height:auto;border:1px solid #eee}
figcaption{color:#666;font-size:.85em}
code{background:#f3f3f3;padding:0 .2em;border-radius:3px}
pre{background:#f7f7f7;border:1px solid #ddd;padding:.6em;overflow-x:auto;font-size:.85em}
details{margin:.3em 0}summary{cursor:pointer}.missing{color:#a00}
"""

# Click a header to sort by that column; numbers ("0.91 ± 0.01" sorts as 0.91) before text, "–" last.
_SORT_JS = """
document.querySelectorAll("table.sortable th").forEach(function (th) {
  th.addEventListener("click", function () {
    var body = th.closest("table").tBodies[0], col = th.cellIndex, asc = th.dataset.dir !== "asc";
    th.parentNode.querySelectorAll("th").forEach(function (h) { delete h.dataset.dir; });
    th.dataset.dir = asc ? "asc" : "desc";
    function key(row) {
      var t = row.cells[col] ? row.cells[col].textContent.trim() : "", n = parseFloat(t);
      return isNaN(n) ? [t === "\\u2013" ? 2 : 1, t] : [0, n];
    }
    Array.from(body.rows).sort(function (a, b) {
      var x = key(a), y = key(b), c = x[0] - y[0] || (x[1] < y[1] ? -1 : x[1] > y[1] ? 1 : 0);
      return asc ? c : -c;
    }).forEach(function (row) { body.appendChild(row); });
  });
});
"""


def _data_uri(out: Path, rel: str) -> str | None:
    """``data:image/png;base64,...`` for OUT/rel, or None when it is not a PNG file inside ``out``."""
    root = out.resolve()
    path = (root / rel).resolve()
    if not path.is_relative_to(root) or path.suffix.lower() != ".png" or not path.is_file():
        return None
    return "data:image/png;base64," + base64.b64encode(path.read_bytes()).decode("ascii")


def _image(alt: str, rel: str, out: Path) -> str:
    uri = _data_uri(out, rel)
    if uri is None:
        return f'<span class="missing">[missing plot: {escape(rel)}]</span>'
    return f'<img src="{uri}" alt="{escape(alt)}" data-file="{escape(rel)}">'


def _emphasis(text: str) -> str:
    """Bold and italic on already-escaped text (escaping leaves ``*`` alone)."""
    return _EM.sub(r"<em>\1</em>", _STRONG.sub(r"<strong>\1</strong>", text))


def inline_html(text: str, out: Path) -> str:
    """One line of Markdown text as escaped HTML: code spans, images, bold and italic."""
    parts, pos = [], 0
    for m in _INLINE.finditer(text):
        parts.append(_emphasis(escape(text[pos : m.start()])))
        if m.group(1) is not None:
            parts.append(f"<code>{escape(m.group(1))}</code>")
        else:
            parts.append(_image(m.group(2), m.group(3), out))
        pos = m.end()
    parts.append(_emphasis(escape(text[pos:])))
    return "".join(parts)


def _cells(row: str) -> list[str]:
    row = row.strip()
    row = row[1:] if row.startswith("|") else row
    row = row[:-1] if row.endswith("|") and not row.endswith("\\|") else row
    return [c.strip().replace("\\|", "|") for c in _CELL_BAR.split(row)]


def _table(rows: list[str], out: Path) -> str:
    """A pipe table (header, ``|---|`` rule, body) as a sortable HTML table."""
    cells = [_cells(r) for r in rows]
    header = cells[0]
    body = [c for c in cells[1:] if not all(re.fullmatch(r":?-+:?", x) for x in c)]
    head = "".join(f"<th>{inline_html(h, out)}</th>" for h in header)
    trs = "".join("<tr>" + "".join(f"<td>{inline_html(x, out)}</td>" for x in r) + "</tr>\n" for r in body)
    return f'<div class="scroll"><table class="sortable"><thead><tr>{head}</tr></thead>\n<tbody>\n{trs}</tbody></table></div>'


def _paragraph(lines: list[str], out: Path) -> str:
    text = " ".join(x.strip() for x in lines)
    image = _INLINE.fullmatch(text)
    if image and image.group(1) is None:  # a plot on its own: a figure with its alt text as caption
        caption = escape(image.group(2))
        return f"<figure>{_image(image.group(2), image.group(3), out)}<figcaption>{caption}</figcaption></figure>"
    return f"<p>{inline_html(text, out)}</p>"


def _take(lines: list[str], i: int, keep) -> tuple[list[str], int]:
    """The run of lines from ``i`` on for which ``keep(line)`` holds, and the index after it."""
    j = i
    while j < len(lines) and keep(lines[j]):
        j += 1
    return lines[i:j], j


def markdown_to_html(lines: list[str], out: Path) -> list[str]:
    """The report's Markdown lines as HTML blocks; images are read from (and must lie in) ``out``."""
    lines = "\n".join(lines).split("\n")  # a preamble may hold several lines
    blocks, i = [], 0
    while i < len(lines):
        line = lines[i]
        heading = re.match(r"(#{1,6}) (.*)", line)
        if not line.strip():
            i += 1
        elif heading:
            level, text = len(heading.group(1)), heading.group(2)
            blocks.append(f'<h{level} id="{slug(text)}">{inline_html(text, out)}</h{level}>')
            i += 1
        elif line.startswith("|"):
            rows, i = _take(lines, i, lambda x: x.startswith("|"))
            blocks.append(_table(rows, out))
        elif line.startswith("- "):
            items, i = _take(lines, i, lambda x: x.startswith("- "))
            blocks.append("<ul>" + "".join(f"<li>{inline_html(x[2:], out)}</li>" for x in items) + "</ul>")
        else:
            para, i = _take(lines, i + 1, lambda x: bool(x.strip()) and not _BLOCK_START.match(x))
            blocks.append(_paragraph([line, *para], out))
    return blocks


def _read(path: Path) -> str | None:
    try:
        return path.read_text(errors="replace")
    except OSError:
        return None


def _pretty_json(text: str) -> str:
    try:
        return json.dumps(json.loads(text), indent=1, ensure_ascii=False)
    except ValueError:  # shown as it is: a torn file is still worth reading
        return text


def _details(summary: str, text: str | None) -> str:
    if text is None:
        return f'<p class="missing">{escape(summary)}: not in the run folder.</p>'
    return f"<details><summary>{escape(summary)}</summary><pre>{escape(text)}</pre></details>"


def run_files_html(groups: dict[str, list[tuple[Path, dict]]]) -> list[str]:
    """Each run's config.yaml (or, for runs without one, the config stored in eval.json), environment.json
    and status.json in collapsed ``<details>`` blocks."""
    blocks = [
        '<h2 id="run-files">Run configuration and environment</h2>',
        "<p>Each run's resolved config, the environment that produced it and its status, as stored in its "
        "folder (click to open).</p>",
    ]
    for label, runs in groups.items():
        for run_dir, m in runs:
            config, name = _read(run_dir / "config.yaml"), "config.yaml"
            if config is None and isinstance(m.get("config"), dict):
                config, name = yaml.safe_dump(m["config"], sort_keys=False), "config (from eval.json)"
            env, status = _read(run_dir / "environment.json"), _read(run_dir / "status.json")
            blocks += [
                f"<h3>{escape(label)}: <code>{escape(str(run_dir))}</code></h3>",
                _details(name, config),
                _details("environment.json", None if env is None else _pretty_json(env)),
                _details("status.json", None if status is None else _pretty_json(status)),
            ]
    return blocks


def _contents(blocks: list[str]) -> str:
    """A list of links to the page's second-level headings."""
    links = re.findall(r'<h2 id="([^"]*)">(.*?)</h2>', "\n".join(blocks))
    items = "".join(f'<li><a href="#{anchor}">{text}</a></li>' for anchor, text in links)
    return f"<nav><ol>{items}</ol></nav>" if items else ""


def write_html(
    path: str | Path,
    title: str,
    head: list[str],
    body: list[str],
    groups: dict[str, list[tuple[Path, dict]]],
) -> Path:
    """Write the page: ``head`` (title and runs table, Markdown), the runs' files, then ``body`` (Markdown).

    Plots named in the Markdown are read from ``path``'s folder and embedded.
    """
    path = Path(path)
    out = path.parent
    blocks = markdown_to_html(head, out) + run_files_html(groups) + markdown_to_html(body, out)
    if blocks and blocks[0].startswith("<h1"):  # the contents go right under the title
        blocks.insert(1, _contents(blocks))
    page = [
        "<!DOCTYPE html>",
        '<html lang="en"><head><meta charset="utf-8">',
        '<meta name="viewport" content="width=device-width, initial-scale=1">',
        f"<title>{escape(title)}</title><style>{_STYLE}</style></head><body>",
        *blocks,
        f"<script>{_SORT_JS}</script>",
        "</body></html>",
        "",
    ]
    path.write_text("\n".join(page), encoding="utf-8")
    return path
