"""Hand a trained model to someone else: ``export_run(RUN, DIR)`` and ``from_pretrained(DIR)``.

The folder has the layout huggingface_hub's ``ModelHubMixin`` writes and reads (an upload is one call later;
nothing here uses the network):

* ``model.safetensors`` -- the BACKBONE's weights under its own key names (no ``backbone.`` prefix), so plain
  ``safetensors.torch.load_file`` + ``module.load_state_dict`` loads them into the same architecture;
* ``head.safetensors`` -- the rest of the method (projection / posterior head, decoder, ...), keys relative to
  the method;
* ``config.json`` -- the run's full config, the image shape, the checkpoint step and probssl's version;
* ``README.md`` -- a model card: method, data, budget, the evaluation's numbers, intended use, and which
  uncertainty score it reports and how that score was validated.

Nothing in the folder is pickled: loading it never runs code.
"""

from __future__ import annotations

import json
from pathlib import Path
from typing import Any

import torch
from safetensors.torch import load_file, save_file

from probssl.config import from_dict
from probssl.methods import Method, create_method
from probssl.train.checkpoint import CheckpointError
from probssl.train.logging import read_json
from probssl.train.trainer import load_run

__all__ = ["export_run", "from_pretrained"]

BACKBONE_PREFIX = "backbone."


def _split_state(method: Method) -> tuple[dict[str, torch.Tensor], dict[str, torch.Tensor]]:
    """(backbone weights without the prefix, every other tensor of the method), contiguous copies on the CPU."""
    backbone, rest = {}, {}
    for key, value in method.state_dict().items():
        tensor = value.detach().cpu().contiguous().clone()
        if key.startswith(BACKBONE_PREFIX):
            backbone[key[len(BACKBONE_PREFIX) :]] = tensor
        else:
            rest[key] = tensor
    return backbone, rest


def export_run(run_dir: str | Path, out_dir: str | Path, checkpoint: str | None = None) -> Path:
    """Write the export folder of ``run_dir``'s latest checkpoint (or ``checkpoint``); returns ``out_dir``."""
    import probssl

    config, method, state = load_run(run_dir, checkpoint=checkpoint)
    out = Path(out_dir)
    out.mkdir(parents=True, exist_ok=True)
    backbone, rest = _split_state(method)
    save_file(backbone, str(out / "model.safetensors"), metadata={"format": "pt", "probssl": "backbone"})
    save_file(rest, str(out / "head.safetensors"), metadata={"format": "pt", "probssl": "head"})
    record = {
        "probssl_version": probssl.__version__,
        "method": config.method.name,
        "step": state.step,
        "image_shape": state.extra["image_shape"],
        "feature_dim": int(method.backbone.feature_dim),
        "config": config.to_dict(),
    }
    (out / "config.json").write_text(json.dumps(record, indent=1))
    (out / "README.md").write_text(model_card(record, read_json(Path(run_dir) / "eval.json"), method))
    return out


def from_pretrained(
    folder: str | Path, device: str | torch.device = "cpu", backbone: torch.nn.Module | None = None
) -> Method:
    """The method of an export folder, in eval mode, ready for ``posterior()`` / ``represent()``."""
    folder = Path(folder)
    record = read_json(folder / "config.json")
    if not isinstance(record, dict) or "config" not in record:
        raise CheckpointError(f"{folder} is not a probssl export: config.json is missing or unreadable")
    config = from_dict(record["config"], migrate=True)
    method = create_method(config, tuple(record["image_shape"]), backbone=backbone)
    state = {BACKBONE_PREFIX + k: v for k, v in load_file(str(folder / "model.safetensors")).items()}
    state.update(load_file(str(folder / "head.safetensors")))
    method.match_state(state)
    method.load_state_dict(state)
    return method.to(device).eval()


def _fmt(value: Any) -> str:
    return f"{value:.4f}" if isinstance(value, float) else str(value)


def model_card(record: dict, metrics: dict | None, method: Method) -> str:
    """README.md of an export folder."""
    c = record["config"]
    lines = [
        f"# {record['method']} on {c['data']['name']} (probssl {record['probssl_version']})",
        "",
        f"Self-supervised `{record['method']}` with a `{c['model']['backbone']}` backbone "
        f"({record['feature_dim']}-d features) on `{c['data']['name']}` images of shape {record['image_shape']}, "
        f"trained for {c['train']['epochs']} epochs (batch {c['train']['batch_size']}, checkpoint step "
        f"{record['step']}).",
        "",
        "## Use",
        "",
        "```python",
        "import probssl",
        "method = probssl.from_pretrained('THIS_FOLDER')",
        "q = method.posterior(images)          # images: float [N, C, H, W] in [0, 1]",
        "z = method.represent(images)          # the evaluated representation",
        "u = method.uncertainty(images)        # higher = more uncertain",
        "```",
        "",
        "The backbone alone: `model.safetensors` holds its weights under its own key names "
        "(`module.load_state_dict(safetensors.torch.load_file('model.safetensors'))`).",
        "",
        "## Uncertainty",
        "",
        f"`uncertainty()` returns the method's default score, `{method.uncertainty_kinds()[0]}` "
        f"({', '.join(method.uncertainty_kinds())} are available).",
    ]
    if metrics:
        s = metrics.get("summary", {})
        ood = ", ".join(f"{k.split('/')[1]} {_fmt(v)}" for k, v in s.items() if k.startswith("ood_auroc/"))
        lines += [
            f"Validated by `probssl eval`: OOD AUROC {ood or '–'}; misclassification AUROC "
            f"{_fmt(s.get('misclassification_auroc'))} (score `{s.get('uncertainty_score')}`).",
            "",
            "## Evaluation (test split)",
            "",
            "| metric | value |",
            "|---|---|",
        ]
        lines += [f"| {k} | {_fmt(v)} |" for k, v in s.items()]
    else:
        lines += ["", "This run was not evaluated (`probssl eval RUN` before exporting adds the numbers)."]
    lines += [
        "",
        "## Intended use",
        "",
        "Research on self-supervised representations and their uncertainty. Not validated for decisions "
        "about people; its uncertainty is only as good as the evaluation above shows.",
    ]
    return "\n".join(lines) + "\n"
