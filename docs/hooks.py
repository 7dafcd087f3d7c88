"""MkDocs hook of the probssl documentation (``hooks:`` in mkdocs.yml; not part of the package).

It keeps the pages true to the code by generating, at build time, what the code already knows:

* ``<!-- probssl:method NAME -->`` on a method page becomes that method's facts, read from the method registry:
  class, posterior family, default representation and uncertainty score, every ``config.method`` key with its
  default and checks (``probssl.config.spec``), and every preset that uses the method with its method section.
* ``<!-- probssl:scores -->`` becomes the table of every posterior family's uncertainty scores with the
  description the family registers with ``@uncertainty_score``.
* ``<!-- probssl:datasets -->`` becomes the dataset registry's table.
* Links from the existing pages to ``../benchmarks/results/FILE`` point at a copy of that file in the site
  (``results/FILE``), so the raw results open from the built site too.

A registered method without a page under ``docs/methods/`` is a build warning, which ``--strict`` makes an error.

griffe's complaints about a docstring's layout (``path.py:LINE: ...``) are warnings like any other, so ``--strict``
fails on them too (they were demoted to INFO until 2026-12-07, when the last one was fixed).
"""

from __future__ import annotations

import dataclasses
import functools
import html
import logging
import re
from pathlib import Path

from mkdocs.structure.files import File, Files

log = logging.getLogger("mkdocs.plugins.probssl")
REPO = Path(__file__).resolve().parents[1]
RESULTS = REPO / "benchmarks" / "results"
RESULTS_LINK = re.compile(r"\]\(((?:\.\./)+)benchmarks/results/([^)#\s]+)")
PLACEHOLDER = re.compile(r"<!-- probssl:(method|scores|datasets)(?: ([\w-]+))? -->")


def on_files(files: Files, config) -> Files:
    """Add benchmarks/results/* as site files under results/, and check every method has a page."""
    for path in sorted(RESULTS.iterdir()):
        if path.is_file():
            files.append(File.generated(config, f"results/{path.name}", abs_src_path=str(path)))
    import probssl
    from probssl.methods import method_class

    pages = {f.src_uri for f in files}
    # probssl's own methods (a plugin loaded into this process through PROBSSL_PLUGINS documents itself)
    for name in (n for n in probssl.list_methods() if method_class(n).__module__.startswith("probssl.")):
        if f"methods/{name}.md" not in pages:
            log.warning(f"registered method '{name}' has no page docs/methods/{name}.md")
    return files


def on_page_markdown(markdown: str, page, config, files) -> str:
    depth = page.file.src_uri.count("/")
    prefix = "../" * depth

    def results_link(m: re.Match) -> str:
        return f"]({prefix}results/{m.group(2)}"

    markdown = RESULTS_LINK.sub(results_link, markdown)
    return PLACEHOLDER.sub(lambda m: _render(m.group(1), m.group(2)), markdown)


def _render(kind: str, arg: str | None) -> str:
    if kind == "scores":
        return score_table()
    if kind == "datasets":
        return dataset_table()
    return method_facts(arg)


# ----------------------------------------------------------------------------- generated tables


def _cell(value) -> str:
    text = "null" if value is None else str(value).lower() if isinstance(value, bool) else str(value)
    return "`" + text.replace("|", "\\|") + "`"


def _text(text: str) -> str:
    """Plain text for a Markdown table cell: no HTML (``<class>``), links (``[,label]``) or column breaks."""
    return html.escape(text).replace("[", "\\[").replace("]", "\\]").replace("|", "\\|")


def _checks(metadata) -> str:
    parts = []
    if metadata.get("choices"):
        parts.append("one of " + ", ".join(_cell(c) for c in metadata["choices"]))
    low, high = metadata.get("minimum"), metadata.get("maximum")
    if low is not None:
        parts.append(f"{'>' if metadata.get('exclusive_minimum') else '≥'} {low}")
    if high is not None:
        parts.append(f"≤ {high}")
    return "; ".join(parts)


def _default(f: dataclasses.Field):
    if f.default is not dataclasses.MISSING:
        return f.default
    if f.default_factory is not dataclasses.MISSING:
        return f.default_factory()
    return None


def config_table(config_class) -> str:
    rows = ["| key | type | default | checks |", "|---|---|---|---|"]
    for f in dataclasses.fields(config_class):
        if f.name == "name":  # the registered name, in the facts table above
            continue
        kind = f.type if isinstance(f.type, str) else getattr(f.type, "__name__", str(f.type))
        rows.append(f"| `method.{f.name}` | `{kind}` | {_cell(_default(f))} | {_checks(f.metadata)} |")
    return "\n".join(rows)


@functools.cache
def all_presets() -> tuple:
    """((preset name, Config), ...) for every preset that loads, each loaded once per build."""
    import probssl

    found = []
    for preset in probssl.list_presets():
        try:
            found.append((preset, probssl.load_config(preset)))
        except probssl.ConfigError as err:  # a broken preset fails the strict build, named, without a traceback
            log.warning(f"preset '{preset}' does not load: {err}")
    return tuple(found)


def presets_of(name: str) -> list:
    return [(preset, config) for preset, config in all_presets() if config.method.name == name]


def preset_table(name: str, config_class) -> str:
    presets = presets_of(name)
    if not presets:
        return "No preset uses this method; set `method.name` on another preset of its family."
    defaults = {f.name: _default(f) for f in dataclasses.fields(config_class)}
    rows = [
        "| preset | data | backbone | epochs × batch, lr | method keys that differ from the defaults |",
        "|---|---|---|---|---|",
    ]
    for preset, c in presets:
        changed = [
            f"`{k}={_cell(getattr(c.method, k)).strip('`')}`"
            for k, v in defaults.items()
            if k != "name" and getattr(c.method, k) != v
        ]
        t = c.train
        rows.append(
            f"| `{preset}` | `{c.data.name}` | `{c.model.backbone}` | {t.epochs} × {t.batch_size}, {t.lr:g} | "
            f"{', '.join(changed) or '(none)'} |"
        )
    return "\n".join(rows)


def method_facts(name: str | None) -> str:
    from probssl.methods import method_class

    cls = method_class(name)  # an unknown name fails the build, naming the registered methods
    post = cls.posterior_class
    kinds = post.uncertainty_kinds()
    scores = ", ".join(f"`{k}`" for k in kinds) or "(none: a point mass)"
    default_score = cls.default_uncertainty or (kinds[0] if kinds else "knn_distance")
    facts = [
        "| fact | value |",
        "|---|---|",
        f"| registered name | `{cls.name}` (`method.name: {cls.name}`) |",
        f"| class | `{cls.__module__}.{cls.__qualname__}` |",
        f"| config schema | `{cls.config_class.__module__}.{cls.config_class.__qualname__}` |",
        f"| uses labels in training | {'yes' if cls.supervised else 'no'} |",
        f"| posterior family | `{post.__name__}`{' (probabilistic)' if cls.probabilistic else ' (deterministic)'} |",
        f"| posterior scores | {scores} |",
        f"| default uncertainty (`method.uncertainty(x)`) | `{default_score}` |",
        f"| default representation | `{cls.default_representation}` |",
    ]
    return "\n".join(
        [
            "*Generated from the method registry and the presets when the site is built.*",
            "",
            *facts,
            "",
            f"#### Configuration (`{cls.config_class.__name__}`)",
            "",
            config_table(cls.config_class),
            "",
            "#### Presets",
            "",
            preset_table(cls.name, cls.config_class),
        ]
    )


def score_table() -> str:
    import probssl.distributions as dists

    rows = ["| posterior family | score | what it measures |", "|---|---|---|"]
    for cls_name in dists.__all__:
        cls = getattr(dists, cls_name)
        if not (isinstance(cls, type) and issubclass(cls, dists.Posterior)) or cls is dists.Posterior:
            continue
        for kind, description in cls.uncertainty_descriptions().items():
            mark = " (family default)" if kind == cls.default_uncertainty else ""
            rows.append(f"| `{cls.__name__}` | `{kind}`{mark} | {_text(description)} |")
    return "\n".join(rows)


def dataset_table() -> str:
    from probssl.data import list_datasets
    from probssl.data.registry import dataset_family

    rows = ["| name | aliases | description |", "|---|---|---|"]
    for name in list_datasets():
        family = dataset_family(name)
        aliases = ", ".join(f"`{a}`" for a in family.aliases) or ""
        rows.append(f"| `{family.name}` | {aliases} | {_text(family.description)} |")
    return "\n".join(rows)
