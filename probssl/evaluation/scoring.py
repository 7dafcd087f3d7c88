"""Per-image uncertainty scores: the posterior family's named scores, Monte-Carlo dispersion, kNN distance."""

from __future__ import annotations

import torch
import torch.nn.functional as F
from torch import Tensor

from probssl.data import to_float_images
from probssl.distributions import Posterior, StraightThroughBernoulli
from probssl.evaluation.corruptions import uncertainty_vs_severity
from probssl.evaluation.density import GaussianDensityScore
from probssl.evaluation.features import extract
from probssl.evaluation.options import EvalOptions
from probssl.evaluation.uncertainty import knn_distance_score
from probssl.methods import Method

__all__ = ["SCORE_DESCRIPTIONS", "Scorer", "mc_dispersion", "posterior_scores"]

# Scores every method has (the posterior's own scores come from its family: Posterior.uncertainty_descriptions()).
GENERIC_SCORES = {
    "mc_dispersion": "1 - ||mean of S unit-normalised posterior samples|| (spherical variance; bits are "
    "mapped to +-1 first); 0 = every sample points the same way",
    "knn_distance": "mean cosine distance (1 - cos) of the representation to its k nearest training "
    "representations; defined for every method",
    "density": "squared Mahalanobis distance of the backbone features to the nearest class mean of the training "
    "features (class-conditional Gaussians, tied Ledoit-Wolf covariance; Lee et al. 2018): epistemic, every method",
}
SCORE_DESCRIPTIONS = GENERIC_SCORES  # kept for callers of probssl <= 0.1; a Scorer's ``descriptions`` has all


def dispersion(q: Posterior, samples: int) -> Tensor:
    """1 - ||mean of ``samples`` unit-normalised draws from q|| per batch element, [B] (bits -> +-1 first)."""
    z = q.sample((samples,)).float()  # [S, B, d]
    if isinstance(q, StraightThroughBernoulli):
        z = 2 * z - 1  # bits -> +-1 so that every code has the same norm
    return (1 - F.normalize(z, dim=-1).mean(0).norm(dim=-1)).clamp_min(0).cpu()


@torch.no_grad()
def posterior_scores(
    method: Method, images: Tensor, samples: int, batch_size: int, device, seed: int
) -> dict[str, Tensor]:
    """Per-image scores [N] from ONE posterior per batch: every named score of the posterior's family
    (``method.uncertainty_kinds()``, the method's default first) and the MC dispersion.

    The draws are seeded (``seed``) without disturbing the caller's random state.
    """
    method.eval()
    kinds = method.posterior_class.uncertainty_kinds()  # the family's; extra (method-level) scores: extra_scores
    out: dict[str, list[Tensor]] = {k: [] for k in [*kinds, "mc_dispersion"]}
    step = max(1, batch_size // 4)  # S samples per image: keep [S, B, d] small
    with torch.random.fork_rng(devices=[]):
        torch.manual_seed(seed)
        for i in range(0, len(images), step):
            q = method.posterior(to_float_images(images[i : i + step].to(device)))
            for kind in kinds:
                out[kind].append(q.uncertainty(kind).float().cpu())
            out["mc_dispersion"].append(dispersion(q, samples))
    return {k: torch.cat(v) for k, v in out.items()}


@torch.no_grad()
def extra_scores(method: Method, images: Tensor, batch_size: int, device) -> dict[str, Tensor]:
    """``method.extra_uncertainty`` of every image, batched: {name: [N]} (float32, CPU)."""
    method.eval()
    out: dict[str, list[Tensor]] = {}
    for i in range(0, len(images), batch_size):
        for name, u in method.extra_uncertainty(to_float_images(images[i : i + batch_size].to(device))).items():
            out.setdefault(name, []).append(u.float().cpu())
    return {k: torch.cat(v) for k, v in out.items()}


def mc_dispersion(method: Method, images: Tensor, samples: int, batch_size: int, device, seed: int) -> Tensor:
    """1 - ||mean of unit-normalised posterior samples|| per image, [N]."""
    return posterior_scores(method, images, samples, batch_size, device, seed)["mc_dispersion"]


class Scorer:
    """Per-image uncertainty scores of one method: images (uint8 or float) -> {score name: [N]}.

    At most three forward passes per batch: one posterior (its named scores + mc_dispersion), one representation
    (knn_distance, skipped when it is passed in) and one backbone (density; shared with the representation when
    that is the backbone).

    train_x: the training split's representation [N, D]; train_backbone / train_labels: its backbone features and
    labels, for the density score (None: no density score).
    """

    def __init__(
        self,
        method: Method,
        kind: str,
        train_x: Tensor,
        opts: EvalOptions,
        device,
        example: Tensor | None = None,
        train_backbone: Tensor | None = None,
        train_labels: Tensor | None = None,
    ):
        self.method, self.kind, self.train_x, self.opts, self.device = method, kind, train_x, opts, device
        self.density = None
        if train_backbone is not None:
            self.density = GaussianDensityScore().fit(train_backbone, train_labels)
        posterior_names = []
        self.extra = method.extra_uncertainty_kinds()  # e.g. predicted_loss, epistemic, combined
        if method.probabilistic:  # a point mass's only score is 0: deterministic methods get the kNN score
            posterior_names = [k for k in method.uncertainty_kinds() if k not in self.extra] + ["mc_dispersion"]
        method_names = [k for k in method.uncertainty_kinds() if k in set(posterior_names) | set(self.extra)]
        self.names = method_names + [n for n in posterior_names if n not in method_names] + ["knn_distance"]
        self.names += ["density"] if self.density is not None else []
        family = method.posterior_class.uncertainty_descriptions() if method.probabilistic else {}
        self.descriptions = {**family, **method.extra_uncertainty_descriptions(), **GENERIC_SCORES}
        # Deterministic methods report the kNN distance unless their config names another score (their only
        # posterior score is 0; a loss predictor's score ranked below kNN on the suites, docs/uncertainty.md).
        chosen = method.default_uncertainty in self.extra
        self.primary = method_names[0] if method_names and (method.probabilistic or chosen) else "knn_distance"

    def all(self, images: Tensor, feats: Tensor | None = None) -> dict[str, Tensor]:
        """{score: [N]} for images uint8/float [N, C, H, W]; ``feats``: their representation if already known."""
        o = self.opts
        out = {}
        if self.method.probabilistic:
            out.update(posterior_scores(self.method, images, o.mc_samples, o.batch_size, self.device, o.seed))
        if self.extra:
            out.update(extra_scores(self.method, images, o.batch_size, self.device))
        if feats is None:
            feats = extract(self.method, images, self.kind, o.batch_size, self.device, o.precision)
        out["knn_distance"] = knn_distance_score(self.train_x, feats, k=o.knn_score_k)
        if self.density is not None:
            backbone = (
                feats
                if self.kind == "backbone"
                else extract(self.method, images, "backbone", o.batch_size, self.device, o.precision)
            )
            out["density"] = self.density.score(backbone).float()
        return out

    def score(self, images: Tensor, name: str) -> Tensor:
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
