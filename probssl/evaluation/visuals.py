"""Pictures in an evaluation: the t-SNE map's coordinates and PNG grids of certain / uncertain test images,
reconstructions and samples."""

from __future__ import annotations

from pathlib import Path

import torch
from torch import Tensor

from probssl.data import DataSplits, to_float_images
from probssl.evaluation._utils import one_thread
from probssl.evaluation.options import EvalOptions
from probssl.evaluation.probes import standardize
from probssl.methods import Method

__all__ = ["images_section", "save_image_grid", "tsne_map"]


def tsne_map(x: Tensor, seed: int) -> Tensor:
    from sklearn.manifold import TSNE

    n = len(x)
    perplexity = float(min(30.0, max(2.0, (n - 1) / 3)))
    with one_thread():
        coords = TSNE(
            n_components=2, perplexity=perplexity, init="pca", learning_rate="auto", random_state=seed
        ).fit_transform(standardize(x.double())[0].numpy())
    return torch.from_numpy(coords)


def save_image_grid(rows: list[tuple[str, Tensor, list[str] | None]], path: Path, title: str) -> Path:
    """Rows of images (float [n, C, H, W] in [0, 1]) with a row label and optional per-image captions."""
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    cols = max(len(images) for _, images, _ in rows)
    fig, axes = plt.subplots(len(rows), cols, figsize=(1.1 * cols + 1.2, 1.45 * len(rows) + 0.6), squeeze=False)
    for r, (label, images, captions) in enumerate(rows):
        for j in range(cols):
            ax = axes[r, j]
            ax.set_xticks([])
            ax.set_yticks([])
            if j >= len(images):
                ax.axis("off")
                continue
            img = images[j].detach().float().clamp(0, 1).cpu()
            if img.shape[0] == 1:
                ax.imshow(img[0].numpy(), cmap="gray", vmin=0, vmax=1, interpolation="nearest")
            else:
                ax.imshow(img.permute(1, 2, 0).numpy(), interpolation="nearest")
            if captions:
                ax.set_title(captions[j], fontsize=7)
            if j == 0:
                ax.set_ylabel(label, fontsize=9)
    fig.suptitle(title, fontsize=11)
    fig.tight_layout()
    path.parent.mkdir(parents=True, exist_ok=True)
    fig.savefig(path, dpi=110)
    plt.close(fig)
    return path


def images_section(
    method: Method, splits: DataSplits, primary: str, scores: Tensor | None, image_dir: Path, opts: EvalOptions, device
) -> dict[str, str]:
    out = {}
    test = splits.test
    if scores is not None:
        k = min(12, len(scores) // 2)
        order = torch.argsort(scores, stable=True)
        rows = []
        for label, idx in (("most certain", order[:k]), ("least certain", order.flip(0)[:k])):
            captions = [f"u={scores[i]:.3g}\nclass {test.classes[int(test.labels[i])]}" for i in idx.tolist()]
            rows.append((label, to_float_images(test.images[idx]), captions))
        out["certainty"] = str(
            save_image_grid(
                rows, image_dir / "certainty.png", f"{method.name}: test images ranked by {primary} uncertainty"
            )
        )
    with torch.no_grad():
        if hasattr(method, "reconstruct"):
            originals = to_float_images(test.images[:12].to(device))
            recon = method.reconstruct(originals).float().cpu()
            out["reconstructions"] = str(
                save_image_grid(
                    [("input", originals.cpu(), None), ("reconstruction", recon, None)],
                    image_dir / "reconstructions.png",
                    f"{method.name}: test images and their reconstructions",
                )
            )
        if hasattr(method, "sample"):
            samples = method.sample(24, generator=torch.Generator(device="cpu").manual_seed(opts.seed))
            samples = samples.float().cpu()
            out["samples"] = str(
                save_image_grid(
                    [("", samples[:12], None), ("", samples[12:24], None)],
                    image_dir / "samples.png",
                    f"{method.name}: samples from the generative model",
                )
            )
    return out
