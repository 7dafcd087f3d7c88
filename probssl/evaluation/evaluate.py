"""Evaluate a trained method on its dataset's splits and record how every number was chosen.

:func:`evaluate_run` loads RUN_DIR's latest checkpoint, runs :func:`evaluate_method` and writes
RUN_DIR/eval.json (plus PNG image grids in RUN_DIR/eval_images/). Sections (each switchable through
:class:`EvalOptions`; docs/evaluation.md defines every number):

* probes       -- linear (L-BFGS logistic regression), MLP, weighted-cosine kNN, GMM clustering
                  (Hungarian accuracy, NMI, ARI)
* geometry     -- covariance spectrum and effective rank of the representation and of the embedding,
                  alignment (two augmented views) and uniformity (Wang & Isola 2020)
* information  -- I(Z; Y) by a classifier lower bound and by the Ross (2014) kNN estimator
* uncertainty  -- per-image scores (posterior, Monte-Carlo dispersion, kNN distance), OOD detection,
                  misclassification detection, selective accuracy / AURC, uncertainty vs corruption
* compression  -- bits of one representation vs bits of the raw image, and the accuracy at that size
* content_style-- class probe next to probes for rotation, scale, shift, brightness (, thickness)
* embedding_map-- t-SNE of at most 2,000 test representations, with labels and uncertainties
* images       -- most / least certain test images, reconstructions and samples (generative methods)

Rules: every hyper-parameter (weight decay, k, MLP epoch) is selected on the validation split; the test
split is scored once with the selection. Per-sample arrays kept in eval.json are subsampled to at most
``EvalOptions.max_saved`` (2,000) rows with a fixed seed.
"""
from __future__ import annotations

import dataclasses
import json
import math
import time
from contextlib import nullcontext
from dataclasses import dataclass
from pathlib import Path
from typing import Any, Callable, ClassVar

import torch
import torch.nn.functional as F
from torch import Tensor

from probssl.config import Config, ConfigError, EvalConfig
from probssl.data import DATASETS, DataError, DataSplits, load_dataset
from probssl.data.registry import canonical_name
from probssl.evaluation.alignment import alignment, uniformity
from probssl.evaluation.clustering import clustering_scores
from probssl.evaluation.corruptions import CORRUPTIONS, SEVERITIES, uncertainty_vs_severity
from probssl.evaluation.finetune import fine_tune
from probssl.evaluation.features import extract, extract_embeddings, extract_uncertainty
from probssl.evaluation.geometry import covariance_spectrum, effective_rank
from probssl.evaluation.information import mutual_information
from probssl.evaluation.mlp_probe import mlp_probe
from probssl.evaluation.probes import ProbeResult, fit_logistic_regression, knn_probe, linear_probe, standardize
from probssl.evaluation.style import STYLE_TASKS, content_style_probes
from probssl.evaluation.uncertainty import (aurc, aurc_optimal, knn_distance_score, misclassification_detection,
                                            ood_detection, selective_accuracy_curve)
from probssl.methods import Method, create_method
from probssl.train import build_augmenter, load_run, load_splits, to_float_images

try:  # a dependency of scikit-learn
    from threadpoolctl import threadpool_limits
except ImportError:  # pragma: no cover
    threadpool_limits = None

__all__ = ["DEFAULT_OOD", "EvalOptions", "PROTOCOL", "REPRESENTATION_DESCRIPTIONS", "SCHEMA_VERSION",
           "SCORE_DESCRIPTIONS", "SYNTHETIC_OOD", "evaluate_baselines", "evaluate_method", "evaluate_run",
           "linear_probe_predictions", "make_ood_images", "probe_representations", "representation_bits"]

SCHEMA_VERSION = 2

PROTOCOL = ("features extracted without augmentation in eval mode; linear probe = multinomial logistic "
            "regression (L-BFGS) on standardised features, weight decay selected on the validation split; "
            "kNN = cosine, exp(sim/0.07)-weighted votes, k selected on the validation split; both scored once "
            "on the test split")

REPRESENTATION_DESCRIPTIONS = {
    "backbone": "backbone features f(x), before any head",
    "mean": "posterior mean of q(z|x): the mean direction m/||m|| for sphere posteriors, the mean m for "
            "Gaussian ones, the embedding itself for deterministic methods",
    "direction": "the posterior mean normalised to unit length",
    "sample": "one random draw z ~ q(z|x) per image (stochastic)",
    "bits": "the hard code 1[p > 1/2] of a Bernoulli posterior (SCL-Bernoulli)",
}

SCORE_DESCRIPTIONS = {
    "posterior": "posterior(x).uncertainty(): the method's own per-image uncertainty (projected normal: "
                 "sqrt(mean sigma^2)/||m||; diagonal Gaussian: mean sigma; Bernoulli: mean bit entropy)",
    "mc_dispersion": "1 - ||mean of S unit-normalised posterior samples|| (spherical variance; bits are "
                     "mapped to +-1 first); 0 = every sample points the same way",
    "sigma_mean": "mean of the posterior's scale parameters sigma (projected normal, Gaussian); ignores ||m||",
    "trace": "trace of the posterior covariance, sum of sigma^2 (projected normal: of the underlying Gaussian)",
    "knn_distance": "mean cosine distance (1 - cos) of the representation to its k nearest training "
                    "representations; defined for every method",
}

SYNTHETIC_OOD = {
    "noise": "uniform noise: every pixel i.i.d. uniform on {0, ..., 255}, as many images as the test split",
    "shuffled": "the test images with their pixel positions randomly permuted (one permutation per image, "
                "shared by the channels): the same intensities without spatial structure",
    "inverted": "the test images with inverted intensities, 255 - x",
    "vflip": "the test images flipped upside down (near-OOD: some classes are nearly symmetric)",
}
DEFAULT_OOD = ("noise", "shuffled")

# Config keys that do not change what is trained (dropped when reports group runs by config).
RUNTIME_KEYS = ("train.seed", "train.progress", "train.num_threads", "train.device", "train.log_every",
                "train.checkpoint_every", "train.checkpoint_every_steps", "train.tensorboard",
                "train.deterministic", "data.data_dir", "data.download")


@dataclass
class EvalOptions:
    """What :func:`evaluate_method` computes. Defaults: every section, sized to take seconds on digits and
    well under a minute per section on MNIST-sized data. :meth:`quick` keeps only the core numbers."""

    representation: str = "auto"  # auto (the method's default) | backbone | mean | direction | sample | bits
    batch_size: int = 1024
    knn_k: tuple[int, ...] = (1, 5, 10, 20, 50)
    linear_weight_decays: tuple[float, ...] = (0.0, 1e-5, 1e-4, 1e-3, 1e-2)
    ood: tuple[str, ...] = DEFAULT_OOD  # synthetic names (SYNTHETIC_OOD) and/or dataset names (DATASETS)
    ood_max_images: int = 2000  # OOD images scored per set (a seeded subset)
    mlp: bool = True
    clustering: bool = True
    information: bool = True
    alignment: bool = True
    alignment_samples: int | None = 2000  # test images (two augmented views each) for alignment
    uncertainty: bool = True
    mc_samples: int = 32  # posterior samples per image for mc_dispersion
    knn_score_k: int = 10
    corruptions: bool = True
    corruption_samples: int | None = 500  # test images corrupted at every severity
    compression: bool = True
    compression_curve: bool | None = None  # linear probe on code prefixes; None = only for compressed codes
    style: bool = True
    style_train_samples: int | None = 2000
    style_test_samples: int | None = 1000
    embedding_map: bool = True
    map_samples: int = 2000  # t-SNE points
    images: bool = True
    max_saved: int = 2000  # per-sample arrays kept in eval.json
    fine_tune: bool = False  # also fine-tune the whole network (slow: trains a copy of the backbone)
    fine_tune_epochs: int = 10
    fine_tune_lr: float = 1e-3
    seed: int = 0

    MODES: ClassVar[dict[str, dict[str, Any]]]

    MODES = {
        # Probes (linear, kNN, GMM), geometry, MI and uncertainty/OOD; no MLP, corruptions, style, t-SNE, images.
        "quick": dict(mlp=False, corruptions=False, style=False, embedding_map=False, images=False,
                      compression_curve=False),
        "default": {},
        # Every section without subsampling caps (t-SNE points and saved arrays stay capped at 2,000).
        "full": dict(alignment_samples=None, corruption_samples=None, compression_curve=True,
                     style_train_samples=None, style_test_samples=None),
    }

    @classmethod
    def make(cls, mode: str = "default", cfg: EvalConfig | None = None, **overrides) -> "EvalOptions":
        """Options of ``mode`` (quick | default | full), the run's ``eval`` config section, then ``overrides``."""
        if mode not in cls.MODES:
            raise ValueError(f"unknown evaluation mode {mode!r}; choose from {', '.join(cls.MODES)}")
        base: dict[str, Any] = dict(cls.MODES[mode])
        if cfg is not None:
            base.update(representation=cfg.representation, batch_size=cfg.batch_size, knn_k=tuple(cfg.knn_k),
                        linear_weight_decays=tuple(cfg.linear_weight_decays))
        base.update(overrides)
        return cls(**base)

    @classmethod
    def quick(cls, **overrides) -> "EvalOptions":
        return cls.make("quick", **overrides)

    @classmethod
    def full(cls, **overrides) -> "EvalOptions":
        return cls.make("full", **overrides)

    @classmethod
    def from_config(cls, cfg: EvalConfig | None, **overrides) -> "EvalOptions":
        return cls.make("default", cfg or EvalConfig(), **overrides)

    def to_dict(self) -> dict[str, Any]:
        return {k: list(v) if isinstance(v, tuple) else v for k, v in dataclasses.asdict(self).items()}


# ----------------------------------------------------------------------------- helpers

def _threads1():
    return threadpool_limits(limits=1) if threadpool_limits is not None else nullcontext()


def _subsample(n: int, cap: int | None, seed: int) -> Tensor:
    """Sorted random row indices, at most ``cap`` of range(n) (all rows if cap is None or >= n)."""
    if cap is None or n <= cap:
        return torch.arange(n)
    return torch.randperm(n, generator=torch.Generator().manual_seed(seed))[:cap].sort().values


def _floats(x: Tensor, digits: int = 6) -> list[float]:
    return [round(float(v), digits) for v in x.reshape(-1).tolist()]


def _clean(obj: Any) -> Any:
    """JSON-able copy: NaN / inf -> None, tuples -> lists, tensors -> lists."""
    if isinstance(obj, dict):
        return {str(k): _clean(v) for k, v in obj.items()}
    if isinstance(obj, (list, tuple)):
        return [_clean(v) for v in obj]
    if isinstance(obj, Tensor):
        return _clean(obj.tolist())
    if isinstance(obj, float) and not math.isfinite(obj):
        return None
    return obj


def _probe_dict(result: ProbeResult) -> dict[str, Any]:
    return {"test_acc": result.test_acc, "val_acc": result.val_acc, "selected": result.selected,
            "val_scores": {str(k): v for k, v in result.val_scores.items()}}


def linear_probe_predictions(train_x: Tensor, train_y: Tensor, val_x: Tensor, val_y: Tensor, test_x: Tensor,
                             test_y: Tensor, weight_decays=(0.0, 1e-5, 1e-4, 1e-3, 1e-2),
                             max_iter: int = 200) -> tuple[ProbeResult, Tensor]:
    """``probes.linear_probe`` and the selected model's test predictions [N_test] int64."""
    result = linear_probe(train_x, train_y, val_x, val_y, test_x, test_y, weight_decays, max_iter)
    return result, result.test_pred


def representation_bits(method: Method, kind: str, dim: int) -> tuple[int, str]:
    """Storage of one representation in bits, and the rule used.

    bits: one bit per dimension; the method's own ``representation_bits()`` when it has one and ``kind`` is
    its default representation; otherwise 32 bits (float32) per dimension.
    """
    if kind == "bits":
        return dim, "1 bit per dimension (binary code)"
    if hasattr(method, "representation_bits") and kind == method.default_representation:
        return int(method.representation_bits()), f"{type(method).__name__}.representation_bits()"
    return 32 * dim, "32 bits (float32) per dimension"


def _adapt_images(images: Tensor, shape: tuple[int, int, int]) -> Tensor:
    """uint8 [N, C', H', W'] -> uint8 [N, C, H, W]: grey <-> RGB (ITU-R 601 luma) and bilinear resizing."""
    c, h, w = shape
    x = images.float()
    if x.shape[1] != c:
        x = x.repeat(1, 3, 1, 1) if c == 3 else (x * torch.tensor([0.299, 0.587, 0.114]).view(1, 3, 1, 1)).sum(
            1, keepdim=True)
    if tuple(x.shape[-2:]) != (h, w):
        x = F.interpolate(x, size=(h, w), mode="bilinear", antialias=True, align_corners=False)
    return x.round().clamp(0, 255).to(torch.uint8).contiguous()


def make_ood_images(name: str, splits: DataSplits, config: Config | None = None, seed: int = 0,
                    max_images: int = 10_000) -> tuple[Tensor, str]:
    """Out-of-distribution images uint8 [M, C, H, W] in the in-distribution shape, and their description.

    ``name``: a synthetic set (:data:`SYNTHETIC_OOD`) made from / like the test split, or a dataset name
    (:data:`probssl.data.DATASETS`) whose TEST split is loaded from the run's ``data.data_dir`` and converted
    to the run's channels and size. At most ``max_images`` images (a seeded random subset).
    """
    test = splits.test.images
    g = torch.Generator().manual_seed(seed)
    if name == "noise":
        images = torch.randint(0, 256, test.shape, generator=g, dtype=torch.int64).to(torch.uint8)
        desc = SYNTHETIC_OOD[name]
    elif name == "shuffled":
        n, c, h, w = test.shape
        perm = torch.rand(n, h * w, generator=g).argsort(1)  # one permutation per image
        flat = test.reshape(n, c, h * w)
        images = flat.gather(2, perm[:, None, :].expand(n, c, h * w)).reshape(test.shape).contiguous()
        desc = SYNTHETIC_OOD[name]
    elif name == "inverted":
        images, desc = (255 - test).contiguous(), SYNTHETIC_OOD[name]
    elif name == "vflip":
        images, desc = test.flip(-2).contiguous(), SYNTHETIC_OOD[name]
    else:
        try:
            key = canonical_name(name)
        except DataError as err:
            raise DataError(f"Unknown OOD set {name!r}: use a synthetic set ({', '.join(SYNTHETIC_OOD)}) or a "
                            f"dataset ({', '.join(d for d in DATASETS if d != 'folder')}).") from err
        if key == "folder":
            raise DataError("the 'folder' dataset cannot be an OOD set (it needs its own data_dir)")
        if key == canonical_name(splits.name):
            raise DataError(f"OOD set {name!r} is the in-distribution dataset itself")
        data = config.data if config is not None else Config().data
        other = load_dataset(key, data.data_dir, download=data.download).test
        images = _adapt_images(other.images, splits.image_shape)
        desc = (f"test split of {key} ({len(other)} images, {other.image_shape[0]}x{other.image_shape[1]}x"
                f"{other.image_shape[2]}) converted to {'x'.join(map(str, splits.image_shape))}")
    if len(images) > max_images:
        images = images[_subsample(len(images), max_images, seed)]
    return images, desc


# ----------------------------------------------------------------------------- scores

def _dispersion(q, samples: int) -> Tensor:
    """1 - ||mean of ``samples`` unit-normalised draws from q|| per batch element, [B] (bits -> +-1 first)."""
    z = q.sample((samples,)).float()  # [S, B, d]
    if hasattr(q, "probs"):
        z = 2 * z - 1  # bits -> +-1 so that every code has the same norm
    return (1 - F.normalize(z, dim=-1).mean(0).norm(dim=-1)).clamp_min(0).cpu()


@torch.no_grad()
def _posterior_scores(method: Method, images: Tensor, samples: int, batch_size: int, device, seed: int
                      ) -> dict[str, Tensor]:
    """Per-image scores [N] from ONE posterior per batch: posterior(x).uncertainty(), MC dispersion, and
    for posteriors with a scale parameter the sigma-based scores (mean sigma, trace of the covariance).

    The draws are seeded (``seed``) without disturbing the caller's random state.
    """
    method.eval()
    out: dict[str, list[Tensor]] = {}
    step = max(1, batch_size // 4)  # S samples per image: keep [S, B, d] small
    with torch.random.fork_rng(devices=[]):
        torch.manual_seed(seed)
        for i in range(0, len(images), step):
            q = method.posterior(to_float_images(images[i:i + step].to(device)))
            out.setdefault("posterior", []).append(q.uncertainty().float().cpu())
            out.setdefault("mc_dispersion", []).append(_dispersion(q, samples))
            if hasattr(q, "scale"):
                scale = q.scale.float()
                out.setdefault("sigma_mean", []).append(scale.mean(-1).cpu())
                out.setdefault("trace", []).append(scale.pow(2).sum(-1).cpu())
    return {k: torch.cat(v) for k, v in out.items()}


def _mc_dispersion(method: Method, images: Tensor, samples: int, batch_size: int, device, seed: int) -> Tensor:
    """1 - ||mean of unit-normalised posterior samples|| per image, [N]."""
    return _posterior_scores(method, images, samples, batch_size, device, seed)["mc_dispersion"]


class _Scorer:
    """Per-image uncertainty scores of one method: images (uint8 or float) -> {score name: [N]}.

    At most two forward passes per batch: one posterior (posterior + mc_dispersion) and one representation
    (knn_distance, skipped when the representation is passed in).
    """

    def __init__(self, method: Method, kind: str, train_x: Tensor, opts: EvalOptions, device,
                 example: Tensor | None = None):
        self.method, self.kind, self.train_x, self.opts, self.device = method, kind, train_x, opts, device
        posterior_names = []
        if method.probabilistic:
            posterior_names = ["posterior", "mc_dispersion"]
            if example is not None:  # sigma-based scores exist when the posterior has a scale parameter
                posterior_names = list(_posterior_scores(method, example, 2, 4, device, opts.seed))
        self.names = posterior_names + ["knn_distance"]
        self.primary = "posterior" if method.probabilistic else "knn_distance"

    def all(self, images: Tensor, feats: Tensor | None = None) -> dict[str, Tensor]:
        o = self.opts
        out = {}
        if self.method.probabilistic:
            out.update(_posterior_scores(self.method, images, o.mc_samples, o.batch_size, self.device, o.seed))
        if feats is None:
            feats = extract(self.method, images, self.kind, o.batch_size, self.device)
        out["knn_distance"] = knn_distance_score(self.train_x, feats, k=o.knn_score_k)
        return out

    def score(self, images: Tensor, name: str) -> Tensor:
        if name == "posterior":
            return extract_uncertainty(self.method, images, self.opts.batch_size, self.device)
        return self.all(images)[name]

    def vs_severity(self, images: Tensor) -> dict[str, dict]:
        """``corruptions.uncertainty_vs_severity`` for every score, scoring each corrupted batch ONCE.

        The first call records every score of every batch it is given; the calls for the other scores
        replay those records (the function asks for the batches in a fixed order: clean, then each
        corruption at severities 1..5), with the same seeded generator so the corrupted images agree.
        """
        records: list[dict[str, Tensor]] = []

        def record(x: Tensor) -> Tensor:
            records.append(self.all(x))
            return records[-1][self.names[0]]

        def replay(name: str):
            it = iter(records)
            return lambda x: next(it)[name]

        seed = self.opts.seed
        out = {self.names[0]: uncertainty_vs_severity(record, images, torch.Generator().manual_seed(seed))}
        for name in self.names[1:]:
            out[name] = uncertainty_vs_severity(replay(name), images, torch.Generator().manual_seed(seed))
        return out


# ----------------------------------------------------------------------------- sections

def probe_representations(train_x, val_x, test_x, splits: DataSplits, cfg: EvalConfig | EvalOptions) -> dict[str, Any]:
    """Linear probe + kNN + effective rank of already-extracted features [N_split, D] (used for baselines)."""
    s = splits
    linear = linear_probe(train_x, s.train.labels, val_x, s.val.labels, test_x, s.test.labels,
                          weight_decays=tuple(cfg.linear_weight_decays))
    knn = knn_probe(train_x, s.train.labels, val_x, s.val.labels, test_x, s.test.labels, ks=tuple(cfg.knn_k))
    return {
        "linear_acc": linear.test_acc, "linear_val_acc": linear.val_acc,
        "linear_weight_decay": linear.selected["weight_decay"],
        "knn_acc": knn.test_acc, "knn_val_acc": knn.val_acc, "knn_k": knn.selected["k"],
        "effective_rank": effective_rank(test_x), "feature_dim": int(train_x.shape[1]),
    }


def _selection_rules(opts: EvalOptions) -> dict[str, str]:
    return {
        "linear": f"weight decay in {list(opts.linear_weight_decays)} with the highest validation accuracy "
                  "(fitted strongest first, warm-started); ties -> the stronger decay",
        "knn": f"k in {list(opts.knn_k)} with the highest validation accuracy; ties -> the smaller k",
        "mlp": "(weight decay, epoch) with the highest validation accuracy (early stopping)",
        "clustering": "none: GMM fitted on the test features without labels, number of clusters = classes",
        "mi_classifier": "weight decay with the lowest cross-entropy on 10% of the training rows",
        "misclassification": "errors of the linear probe selected above, on the test split",
        "style": "weight decay on a random 10% of the transformed training subset",
        "ood": "none: threshold-free metrics (AUROC, AUPR) and FPR at 95% TPR",
    }


def _uncertainty_section(scorer: _Scorer, test_images: Tensor, test_feats: Tensor, correct: Tensor,
                         ood_images: dict[str, Tensor], ood_desc: dict[str, str], saved_rows: Tensor,
                         opts: EvalOptions, timing: dict) -> dict[str, Any]:
    tic = time.perf_counter()
    test_scores = scorer.all(test_images, test_feats)
    ood_scores = {name: scorer.all(images) for name, images in ood_images.items()}
    scores = {}
    for name, u in test_scores.items():
        coverage, accuracy = selective_accuracy_curve(u, correct, num_points=50)
        risk = aurc(u, correct)
        entry = {
            "description": SCORE_DESCRIPTIONS[name],
            "mean_test": float(u.mean()), "std_test": float(u.std()) if len(u) > 1 else 0.0,
            "misclassification": misclassification_detection(u, correct),
            "selective": {"coverage": _floats(coverage), "accuracy": _floats(accuracy), "aurc": risk,
                          "aurc_optimal": aurc_optimal(correct), "eaurc": risk - aurc_optimal(correct)},
            "ood": {ood: {**ood_detection(u, ood_scores[ood][name]), "mean_ood": float(ood_scores[ood][name].mean())}
                    for ood in ood_images},
        }
        scores[name] = entry
    timing["uncertainty"] = time.perf_counter() - tic

    if opts.corruptions:
        tic = time.perf_counter()
        rows = _subsample(len(test_images), opts.corruption_samples, opts.seed)
        for name, result in scorer.vs_severity(to_float_images(test_images[rows])).items():
            scores[name]["corruption"] = result
        timing["corruptions"] = time.perf_counter() - tic

    ood_rows = {name: _subsample(len(images), opts.max_saved, opts.seed) for name, images in ood_images.items()}
    return {
        "primary": scorer.primary,
        "scores_available": scorer.names,
        "ood_sets": {name: {"description": ood_desc[name], "num_images": len(images)}
                     for name, images in ood_images.items()},
        "corruption_levels": {name: list(SEVERITIES[name]) for name in CORRUPTIONS} if opts.corruptions else {},
        "corruption_samples": int(min(len(test_images), opts.corruption_samples or len(test_images)))
        if opts.corruptions else 0,
        "scores": scores,
        "samples": {
            "test_index": saved_rows.tolist(),
            "test": {name: _floats(u[saved_rows]) for name, u in test_scores.items()},
            "ood": {ood: {name: _floats(u[ood_rows[ood]]) for name, u in per.items()}
                    for ood, per in ood_scores.items()},
        },
    }, test_scores


def _compression_section(method: Method, kind: str, feats: list[Tensor], splits: DataSplits, linear_acc: float,
                         opts: EvalOptions) -> dict[str, Any]:
    dim = int(feats[0].shape[1])
    bits, rule = representation_bits(method, kind, dim)
    c, h, w = splits.image_shape
    input_bits = c * h * w * 8
    out = {"representation_bits": bits, "bits_rule": rule, "input_bits": input_bits,
           "input_bits_rule": f"C*H*W*8 = {c}*{h}*{w}*8", "ratio": input_bits / bits, "linear_acc": linear_acc}
    bits_per_dim = bits / dim
    do_curve = opts.compression_curve if opts.compression_curve is not None else bits_per_dim < 32
    if do_curve:
        curve, d = [], dim
        while d >= 1 and len(curve) < 6:
            if d == dim:
                acc, val = linear_acc, None
            else:
                result = linear_probe(feats[0][:, :d], splits.train.labels, feats[1][:, :d], splits.val.labels,
                                      feats[2][:, :d], splits.test.labels, weight_decays=opts.linear_weight_decays)
                acc, val = result.test_acc, result.val_acc
            curve.append({"dims": d, "bits": int(round(d * bits_per_dim)), "linear_acc": acc, "val_acc": val})
            d //= 2
        out["curve"] = sorted(curve, key=lambda r: r["bits"])
        out["curve_rule"] = "linear probe on the first d dimensions of the code, d = D, D/2, D/4, ..."
    return out


def _tsne(x: Tensor, seed: int) -> Tensor:
    from sklearn.manifold import TSNE

    n = len(x)
    perplexity = float(min(30.0, max(2.0, (n - 1) / 3)))
    with _threads1():
        coords = TSNE(n_components=2, perplexity=perplexity, init="pca", learning_rate="auto",
                      random_state=seed).fit_transform(standardize(x.double())[0].numpy())
    return torch.from_numpy(coords)


def _save_image_grid(rows: list[tuple[str, Tensor, list[str] | None]], path: Path, title: str) -> Path:
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


def _images_section(method: Method, splits: DataSplits, primary: str, scores: Tensor | None, image_dir: Path,
                    opts: EvalOptions, device) -> dict[str, str]:
    out = {}
    test = splits.test
    if scores is not None:
        k = min(12, len(scores) // 2)
        order = torch.argsort(scores, stable=True)
        rows = []
        for label, idx in (("most certain", order[:k]), ("least certain", order.flip(0)[:k])):
            captions = [f"u={scores[i]:.3g}\nclass {test.classes[int(test.labels[i])]}" for i in idx.tolist()]
            rows.append((label, to_float_images(test.images[idx]), captions))
        out["certainty"] = str(_save_image_grid(rows, image_dir / "certainty.png",
                                                f"{method.name}: test images ranked by {primary} uncertainty"))
    with torch.no_grad():
        if hasattr(method, "reconstruct"):
            originals = to_float_images(test.images[:12].to(device))
            recon = method.reconstruct(originals).float().cpu()
            out["reconstructions"] = str(_save_image_grid(
                [("input", originals.cpu(), None), ("reconstruction", recon, None)],
                image_dir / "reconstructions.png", f"{method.name}: test images and their reconstructions"))
        if hasattr(method, "sample"):
            samples = method.sample(24, generator=torch.Generator(device="cpu").manual_seed(opts.seed))
            samples = samples.float().cpu()
            out["samples"] = str(_save_image_grid([("", samples[:12], None), ("", samples[12:24], None)],
                                                  image_dir / "samples.png",
                                                  f"{method.name}: samples from the generative model"))
    return out


# ----------------------------------------------------------------------------- main entry points

def _summary(m: dict[str, Any]) -> dict[str, Any]:
    """Flat headline numbers (what reports tabulate and average over seeds)."""
    s: dict[str, Any] = {}
    p = m.get("probes", {})
    s["linear_acc"] = p.get("linear", {}).get("test_acc")
    s["knn_acc"] = p.get("knn", {}).get("test_acc")
    if "mlp" in p:
        s["mlp_acc"] = p["mlp"]["test_acc"]
    if "clustering" in p:
        s["gmm_acc"], s["nmi"], s["ari"] = (p["clustering"][k] for k in ("acc", "nmi", "ari"))
    g = m.get("geometry", {})
    s["effective_rank"] = g.get("representation", {}).get("effective_rank")
    s["embedding_effective_rank"] = g.get("embedding", {}).get("effective_rank")
    for space in ("embedding", "representation"):
        for key in ("alignment", "uniformity"):
            if key in g.get(space, {}):
                s[f"{key}" if space == "embedding" else f"{key}/representation"] = g[space][key]
    info = m.get("information")
    if info:
        s["mi_lb_bits"] = info["classifier_lower_bound"]["bits"]
        s["mi_knn_bits"] = info["knn_ross"]["bits"]
        s["label_entropy_bits"] = info["entropy_y"]["bits"]
    u = m.get("uncertainty")
    if u:
        primary = u["scores"][u["primary"]]
        s["uncertainty_score"] = u["primary"]
        s["mean_uncertainty"] = primary["mean_test"]
        s["misclassification_auroc"] = primary["misclassification"]["auroc"]
        s["aurc"] = primary["selective"]["aurc"]
        s["eaurc"] = primary["selective"]["eaurc"]
        for ood, r in primary["ood"].items():
            s[f"ood_auroc/{ood}"] = r["auroc"]
            s[f"ood_fpr95/{ood}"] = r["fpr95"]
        for name, r in primary.get("corruption", {}).items():
            s[f"corruption_spearman/{name}"] = r["spearman"]
    c = m.get("compression")
    if c:
        s["representation_bits"] = c["representation_bits"]
        s["compression_ratio"] = c["ratio"]
    cs = m.get("content_style")
    if cs:
        for task, r in cs.items():
            s["content_acc" if task == "content" else f"style_acc/{task}"] = r["acc"]
    return s


def evaluate_method(method: Method, splits: DataSplits, options: EvalOptions | EvalConfig | None = None,
                    device: str | torch.device = "cpu", config: Config | None = None,
                    image_dir: str | Path | None = None) -> dict[str, Any]:
    """Every section of the evaluation for one method on ``splits``. Returns a JSON-able dict.

    ``options``: :class:`EvalOptions` (an :class:`EvalConfig` is converted). ``config``: the run's config
    (augmenter for alignment, data_dir for OOD datasets, recorded for grouping); defaults are used without
    it. ``image_dir``: where image grids are written (no images without it).
    """
    opts = options if isinstance(options, EvalOptions) else EvalOptions.from_config(options)
    config = config or Config()
    if torch.device(device).type == "cpu":
        # As in training: the probes' Adam moments and L-BFGS updates drift into denormal floats, which x86
        # handles in microcode (many times slower steps).
        torch.set_flush_denormal(True)
    tic_total = time.perf_counter()
    timing: dict[str, float] = {}
    method.eval()
    kind = method.default_representation if opts.representation == "auto" else opts.representation
    try:  # an impossible choice (e.g. bits of a Gaussian posterior) is the user's to fix: one clear error
        extract(method, splits.test.images[:2], kind, opts.batch_size, device)
    except ValueError as err:
        raise ConfigError(f"representation {kind!r} cannot be evaluated for {method.name}: {err}") from err
    labels = [splits.train.labels, splits.val.labels, splits.test.labels]

    tic = time.perf_counter()
    feats = [extract(method, split.images, kind, opts.batch_size, device)
             for split in (splits.train, splits.val, splits.test)]
    embedding = extract_embeddings(method, splits.test.images, opts.batch_size, device)
    timing["features"] = time.perf_counter() - tic

    # ---- probes
    tic = time.perf_counter()
    linear, linear_pred = linear_probe_predictions(feats[0], labels[0], feats[1], labels[1], feats[2], labels[2],
                                                   weight_decays=opts.linear_weight_decays)
    correct = linear_pred == labels[2]
    knn = knn_probe(feats[0], labels[0], feats[1], labels[1], feats[2], labels[2], ks=opts.knn_k)
    probes: dict[str, Any] = {"linear": _probe_dict(linear), "knn": _probe_dict(knn)}
    timing["linear+knn"] = time.perf_counter() - tic
    if opts.mlp:
        tic = time.perf_counter()
        # >= ~20 steps per epoch on small training sets (1024-row batches would give digits 2 steps an epoch)
        mlp_batch = int(min(1024, max(32, math.ceil(len(feats[0]) / 20))))
        probes["mlp"] = _probe_dict(mlp_probe(feats[0], labels[0], feats[1], labels[1], feats[2], labels[2],
                                              batch_size=mlp_batch, seed=opts.seed))
        probes["mlp"]["batch_size"] = mlp_batch
        timing["mlp"] = time.perf_counter() - tic
    if opts.clustering:
        tic = time.perf_counter()
        probes["clustering"] = {**clustering_scores(feats[2], labels[2], seed=opts.seed),
                                "num_clusters": splits.num_classes, "split": "test",
                                "method": "diagonal GMM (EM, k-means init) on standardised features, PCA to 32 "
                                          "dims; Hungarian-matched accuracy, NMI (arithmetic), ARI"}
        timing["clustering"] = time.perf_counter() - tic

    # ---- geometry
    tic = time.perf_counter()
    geometry: dict[str, Any] = {
        "representation": {"dim": int(feats[2].shape[1]), "effective_rank": effective_rank(feats[2]),
                           "spectrum": _floats(covariance_spectrum(feats[2]), 8)},
        "embedding": {"dim": int(embedding.shape[1]), "effective_rank": effective_rank(embedding),
                      "spectrum": _floats(covariance_spectrum(embedding), 8)},
        "split": "test",
    }
    if opts.alignment:
        rows = _subsample(len(splits.test), opts.alignment_samples, opts.seed)
        augmenter = build_augmenter(config, splits.image_shape)
        views = augmenter(splits.test.images[rows], views=2, generator=torch.Generator().manual_seed(opts.seed))
        for space, rep_kind in (("embedding", "mean"), ("representation", kind)):
            z1, z2 = (extract(method, v, rep_kind, opts.batch_size, device) for v in views)
            geometry[space]["alignment"] = alignment(z1, z2)
            z = embedding if space == "embedding" else feats[2]
            geometry[space]["uniformity"] = uniformity(z, max_samples=2000, seed=opts.seed)
        geometry["alignment_protocol"] = (
            f"alignment: mean squared distance between the L2-normalised codes of two views of {len(rows)} test "
            f"images augmented with the run's own augmenter (recipe {config.augment.recipe!r}); uniformity: "
            "log mean exp(-2 squared distance) over all pairs of <= 2000 normalised test codes")
    timing["geometry"] = time.perf_counter() - tic

    # ---- information
    information = None
    if opts.information:
        tic = time.perf_counter()
        information = mutual_information(feats[0], labels[0], feats[2], labels[2], seed=opts.seed)
        timing["information"] = time.perf_counter() - tic

    # ---- uncertainty
    saved_rows = _subsample(len(splits.test), opts.max_saved, opts.seed)
    scorer = _Scorer(method, kind, feats[0], opts, device, example=splits.test.images[:2])
    uncertainty_out, test_scores = None, None
    if opts.uncertainty:
        ood_images, ood_desc = {}, {}
        for name in opts.ood:
            ood_images[name], ood_desc[name] = make_ood_images(name, splits, config, opts.seed, opts.ood_max_images)
        uncertainty_out, test_scores = _uncertainty_section(scorer, splits.test.images, feats[2], correct,
                                                            ood_images, ood_desc, saved_rows, opts, timing)
        uncertainty_out["samples"]["labels"] = labels[2][saved_rows].tolist()
        uncertainty_out["samples"]["correct"] = correct[saved_rows].tolist()

    # ---- compression
    compression = None
    if opts.compression:
        tic = time.perf_counter()
        compression = _compression_section(method, kind, feats, splits, linear.test_acc, opts)
        timing["compression"] = time.perf_counter() - tic

    # ---- content vs style
    content_style = None
    if opts.style:
        tic = time.perf_counter()
        tr = _subsample(len(splits.train), opts.style_train_samples, opts.seed)
        te = _subsample(len(splits.test), opts.style_test_samples, opts.seed)
        content_style = content_style_probes(lambda x: method.represent(x.to(device), kind).float(),
                                             splits.train.images[tr], labels[0][tr], splits.test.images[te],
                                             labels[2][te], seed=opts.seed, batch_size=opts.batch_size)
        timing["content_style"] = time.perf_counter() - tic

    # ---- 2-D map
    embedding_map = None
    if opts.embedding_map and len(splits.test) >= 5:
        tic = time.perf_counter()
        rows = _subsample(len(splits.test), opts.map_samples, opts.seed)
        coords = _tsne(feats[2][rows], opts.seed)
        embedding_map = {"method": "t-SNE (sklearn, perplexity min(30, (n-1)/3), PCA init) of the standardised "
                                   "test representations", "index": rows.tolist(),
                         "x": _floats(coords[:, 0], 4), "y": _floats(coords[:, 1], 4),
                         "labels": labels[2][rows].tolist(), "correct": correct[rows].tolist()}
        if test_scores is not None:
            embedding_map["uncertainty"] = _floats(test_scores[scorer.primary][rows])
            embedding_map["uncertainty_score"] = scorer.primary
        timing["embedding_map"] = time.perf_counter() - tic

    # ---- images
    images = {}
    if opts.images and image_dir is not None:
        tic = time.perf_counter()
        primary_scores = test_scores[scorer.primary] if test_scores is not None else scorer.score(
            splits.test.images, scorer.primary)
        images = _images_section(method, splits, scorer.primary, primary_scores, Path(image_dir), opts, device)
        timing["images"] = time.perf_counter() - tic

    # ---- fine-tuning (opt-in: it trains a copy of the whole network)
    fine_tuning = None
    if opts.fine_tune:
        if config is None:
            raise ValueError("fine-tuning needs the run's config (its augmentation recipe)")
        tic = time.perf_counter()
        fine_tuning = fine_tune(method, splits, config, epochs=opts.fine_tune_epochs, lr=opts.fine_tune_lr,
                                device=device, seed=opts.seed)
        timing["fine_tuning"] = time.perf_counter() - tic

    c, h, w = splits.image_shape
    metrics: dict[str, Any] = {
        "schema": SCHEMA_VERSION,
        "representation": {"kind": kind, "dim": int(feats[0].shape[1]),
                           "description": REPRESENTATION_DESCRIPTIONS[kind],
                           "embedding": "mean", "embedding_dim": int(embedding.shape[1])},
        "splits": {"dataset": splits.name, "train": len(splits.train), "val": len(splits.val),
                   "test": len(splits.test), "num_classes": splits.num_classes, "classes": list(splits.train.classes),
                   "image_shape": [c, h, w],
                   "val_fraction": config.data.val_fraction, "split_seed": config.data.split_seed,
                   "train_subset": config.data.train_subset,
                   "rule": "hyper-parameters selected on val; every reported number is on test (features of "
                           "train fit the probes)"},
        "selection": _selection_rules(opts),
        "protocol": PROTOCOL,
        "options": opts.to_dict(),
        "probes": probes,
        "geometry": geometry,
        "information": information,
        "uncertainty": uncertainty_out,
        "compression": compression,
        "content_style": content_style,
        "style_tasks": {t: STYLE_TASKS[t].description for t in (content_style or {}) if t in STYLE_TASKS},
        "embedding_map": embedding_map,
        "images": images,
        "fine_tuning": fine_tuning,
    }
    metrics = {k: v for k, v in metrics.items() if v is not None}
    metrics["summary"] = _summary(metrics)
    if fine_tuning is not None:
        metrics["summary"]["fine_tune_acc"] = fine_tuning["test_acc"]
    # Flat aliases kept for older callers (probssl train --eval, README).
    metrics["linear_acc"] = linear.test_acc
    metrics["knn_acc"] = knn.test_acc
    metrics["effective_rank"] = geometry["representation"]["effective_rank"]
    if method.probabilistic and test_scores is not None:
        metrics["mean_uncertainty"] = float(test_scores["posterior"].mean())
    timing["total"] = time.perf_counter() - tic_total
    metrics["timing"] = {k: round(v, 3) for k, v in timing.items()}
    metrics["eval_seconds"] = round(timing["total"], 2)
    return _clean(metrics)


def evaluate_baselines(config: Config, splits: DataSplits, cfg: EvalConfig | None = None) -> dict[str, Any]:
    """Reference points for reading the numbers: raw pixels, and the same backbone at random init."""
    cfg = cfg or EvalConfig()
    raw = [split.images.flatten(1).float() / 255 for split in (splits.train, splits.val, splits.test)]
    torch.manual_seed(config.train.seed)
    random_method = create_method(config, splits.image_shape).eval()
    rand = [extract(random_method, split.images, "backbone", cfg.batch_size)
            for split in (splits.train, splits.val, splits.test)]
    return {"raw_pixels": probe_representations(*raw, splits, cfg),
            "random_encoder": probe_representations(*rand, splits, cfg)}


def evaluate_run(run_dir: str | Path, representation: str | None = None, device: str = "cpu", write: bool = True,
                 options: EvalOptions | None = None, ood: list[str] | tuple[str, ...] | None = None,
                 mode: str = "default", progress: Callable[[str], None] | None = None,
                 **overrides) -> dict[str, Any]:
    """Load RUN_DIR's latest checkpoint, evaluate it, and write RUN_DIR/eval.json (+ RUN_DIR/eval_images/).

    Options: ``options`` if given, else ``EvalOptions.make(mode, <the run's eval config>, **overrides)``
    (e.g. ``mlp=False``); ``representation`` and ``ood`` override the corresponding options either way.
    """
    run_dir = Path(run_dir)
    config, method, state = load_run(run_dir, device)
    opts = options or EvalOptions.make(mode, config.eval, **overrides)
    if representation is not None:
        opts = dataclasses.replace(opts, representation=representation)
    if ood is not None:
        opts = dataclasses.replace(opts, ood=tuple(ood))
    if progress:
        progress(f"evaluating {run_dir} ({config.method.name} on {config.data.name})")
    splits = load_splits(config)
    metrics = evaluate_method(method, splits, opts, device, config=config,
                              image_dir=run_dir / "eval_images" if write else None)
    if metrics.get("images"):
        metrics["images"] = {k: str(Path(v).relative_to(run_dir)) for k, v in metrics["images"].items()}
    metrics["run"] = {"run_dir": str(run_dir), "method": config.method.name, "dataset": config.data.name,
                      "step": state.step, "epoch": state.epoch, "seed": config.train.seed,
                      "probabilistic": bool(method.probabilistic),
                      "generative": bool(hasattr(method, "reconstruct") or hasattr(method, "sample"))}
    metrics["config"] = config.to_dict()
    metrics["runtime_config_keys"] = list(RUNTIME_KEYS)
    # Flat aliases kept for older callers.
    metrics.update({"run_dir": str(run_dir), "method": config.method.name, "dataset": config.data.name,
                    "step": state.step, "epoch": state.epoch, "seed": config.train.seed})
    if write:
        (run_dir / "eval.json").write_text(json.dumps(metrics, indent=1))
    return metrics
