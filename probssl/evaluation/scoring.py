"""Per-image uncertainty scores: the posterior family's named scores, Monte-Carlo dispersion, kNN distance."""

from __future__ import annotations

import torch
import torch.nn.functional as F
from torch import Tensor

from probssl.distributions import Posterior, StraightThroughBernoulli
from probssl.evaluation.corruptions import uncertainty_vs_severity
from probssl.evaluation.density import GaussianDensityScore
from probssl.evaluation.features import extract_many, network_pass, representations_from
from probssl.evaluation.options import EvalOptions
from probssl.evaluation.uncertainty import knn_distance_score
from probssl.methods import Method
from probssl.train import autocast

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


#: Representations that need no random draw, so one pass can make them beside the seeded posterior samples.
DRAWLESS_REPRESENTATIONS = ("backbone", "mean", "direction", "bits")


@torch.no_grad()
def network_scores(
    method: Method,
    images: Tensor,
    samples: int,
    batch_size: int,
    device,
    seed: int,
    keep: tuple[str, ...] = (),
    posterior: bool | None = None,
    precision: str = "fp32",
) -> tuple[dict[str, Tensor], dict[str, Tensor]]:
    """Every score the network makes, from one backbone pass per batch of ``images`` uint8/float
    [N, C, H, W] (two for a method that overrides ``posterior``: ``Method.features_and_posterior``): the posterior
    family's named scores and the MC dispersion (``posterior``; None: for a probabilistic method, whose posterior
    is not a point mass) and the method's extra scores (``extra_uncertainty_kinds()``: epistemic, combined,
    predicted loss), each [N] float32 on the CPU; and {kind: [N, D]} of each representation kind in ``keep``
    (``DRAWLESS_REPRESENTATIONS`` of a method that does not override ``represent``: nothing may draw inside the
    seeded block), made from the same pass (:func:`representations_from`).

    The backbone runs under ``precision``'s autocast (fp32: none), the scores' posterior head in float32
    (:func:`scoring_pass`). The posterior draws are seeded (``seed``) without disturbing the caller's random state.
    """
    method.eval()
    posterior = method.probabilistic if posterior is None else posterior
    kinds = method.posterior_class.uncertainty_kinds() if posterior else []
    needs_posterior = posterior or any(k != "backbone" for k in keep)
    out: dict[str, list[Tensor]] = {}
    kept: dict[str, list[Tensor]] = {k: [] for k in keep}
    step = max(1, batch_size // 4)  # S samples per image: keep [S, B, d] small
    with torch.random.fork_rng(devices=[]):
        torch.manual_seed(seed)
        for i in range(0, len(images), step):
            x = method.check_images(images[i : i + step].to(device), "uncertainty")
            features, q, q_made_as_trained = scoring_pass(method, x, device, precision, needs_posterior)
            scores = {kind: q.uncertainty(kind) for kind in kinds}
            if posterior:
                scores["mc_dispersion"] = dispersion(q, samples)
            scores.update(method.extra_uncertainty_of(x, features.float(), q))
            for name, u in scores.items():
                out.setdefault(name, []).append(u.float().cpu())
            with autocast(torch.device(device), precision):  # as extract makes them (e.g. normalise, on CUDA)
                for k, r in representations_from(method, x, features, q_made_as_trained, keep).items():
                    kept[k].append(r)
    return {k: torch.cat(v) for k, v in out.items()}, {k: torch.cat(v) for k, v in kept.items()}


def scoring_pass(
    method: Method, x: Tensor, device, precision: str, needs_posterior: bool = True
) -> tuple[Tensor, Posterior | None, Posterior | None]:
    """One backbone pass over a checked float batch ``x`` [N, C, H, W] under ``precision``'s autocast ->
    (features [N, F], the scores' posterior, the representations' posterior); no posterior without
    ``needs_posterior``. With a lower precision than fp32 the scores' posterior is made from the features in
    float32: a bf16 head rounds each sigma to 8 significant bits, which left 145 distinct log_det_cov values
    among 1,000 VSimCLR test images (999 in float32: benchmarks/score_precision.py); the representations'
    posterior is made under the autocast, as :func:`extract` makes the training split's references. A method that
    overrides ``posterior`` gets one posterior, made under the autocast."""
    with autocast(torch.device(device), precision):
        features, made_as_trained = network_pass(method, x, needs_posterior)
    if made_as_trained is None or precision == "fp32" or not method.posterior_factors():
        return features, made_as_trained, made_as_trained
    return features, method.posterior_from_features(features.float()), made_as_trained


def posterior_scores(
    method: Method, images: Tensor, samples: int, batch_size: int, device, seed: int
) -> dict[str, Tensor]:
    """Per-image scores [N] from ONE posterior per batch: every named score of the posterior's family and the MC
    dispersion (:func:`network_scores`)."""
    names = {*method.posterior_class.uncertainty_kinds(), "mc_dispersion"}
    scores = network_scores(method, images, samples, batch_size, device, seed, posterior=True)[0]
    return {k: v for k, v in scores.items() if k in names}


def mc_dispersion(method: Method, images: Tensor, samples: int, batch_size: int, device, seed: int) -> Tensor:
    """1 - ||mean of unit-normalised posterior samples|| per image, [N]."""
    return posterior_scores(method, images, samples, batch_size, device, seed)["mc_dispersion"]


class Scorer:
    """Per-image uncertainty scores of one method: images (uint8 or float) -> {score name: [N]}.

    One network pass per batch (:func:`network_scores`: the backbone under the evaluation precision with
    ``opts.score_precision="same"``, the default, else in float32) makes the posterior's scores, mc_dispersion and
    the method's extra scores and, when that pass runs in the evaluation precision, the representation
    (knn_distance) and the backbone features (density) too, unless they are passed in. They come from one more pass
    (:func:`extract_many`, under the evaluation precision's autocast, as the training split's ``train_x`` was made,
    so a query and its references are made alike) with ``score_precision="fp32"`` and a lower evaluation
    precision, for a ``sample`` representation (its draws stay out of the seeded posterior samples) and for a
    method that overrides ``represent``.

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
        o, method = self.opts, self.method
        kind = method.default_representation if self.kind == "auto" else self.kind
        kept: dict[str, Tensor] = {} if feats is None else {kind: feats}
        if self.density is not None and kind == "backbone" and feats is not None:
            kept["backbone"] = feats
        need = [k for k in dict.fromkeys([kind, "backbone" if self.density else None]) if k and k not in kept]
        plain = not method.overrides("represent")  # a plugin's own represent is asked outside the seeds
        scoring = o.precision if o.score_precision == "same" else "fp32"
        shared = scoring == o.precision and plain and set(need) <= set(DRAWLESS_REPRESENTATIONS)
        out: dict[str, Tensor] = {}
        if method.probabilistic or self.extra or (shared and need):
            keep = tuple(need) if shared else ()
            out, made = network_scores(
                method, images, o.mc_samples, o.batch_size, self.device, o.seed, keep, precision=scoring
            )
            kept.update(made)
            out = {k: v for k, v in out.items() if k in self.names}
        if need and not shared:  # the representation as the training split's was made: under o.precision
            kept.update(extract_many(method, images, need, o.batch_size, self.device, o.precision))
        out["knn_distance"] = knn_distance_score(self.train_x, kept[kind], k=o.knn_score_k)
        if self.density is not None:
            out["density"] = self.density.score(kept["backbone"]).float()
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
