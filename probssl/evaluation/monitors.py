"""Online monitors: representation quality while pretraining, as a trainer callback.

Every ``train.monitor_every`` epochs (0: off), and every ``train.monitor_every_steps`` steps when that is set, on a fixed seeded subset -- up to ``train.monitor_samples`` training
images as the reference set and half as many validation images as queries -- the monitor logs to ``metrics.jsonl``
(keys ``monitor/...``), TensorBoard and the progress bar:

* ``monitor/knn_acc``: weighted cosine 20-NN accuracy (queries against the reference set);
* ``monitor/linear_acc``: a closed-form ridge-regression probe on one-hot labels (standardised features,
  lambda = 1e-2 x the mean eigenvalue), fitted on the reference set -- a fast stand-in for the evaluation's
  L-BFGS probe, not the same number;
* ``monitor/effective_rank`` (RankMe), ``monitor/alignment`` and ``monitor/uniformity`` of the queries;
* probabilistic methods: the mean, 10 % and 90 % quantiles of the method's default uncertainty score and of its
  ``log_det_cov`` when the family has one, and ``monitor/ood_auroc_noise``: the default score's AUROC against
  uniform noise -- a cheap canary (an inverted score shows up in the first epoch). Before training ends the
  default is the method's posterior score (a feature density, when the method carries one, is fitted only at the end).
  The same quantiles of the posterior's parameters (:func:`posterior_statistics`): sigma, ||m|| or kappa, and the
  method's KL term per image;
* ``monitor/samples``: the reference images used (see the budget below); ``monitor/seconds``: what the measurement
  took, ``monitor/seconds_total``: all of them so far (a run's monitor share is readable from its own log).

**The time budget** (``train.monitor_budget``, default 0.05 = 5 % of the training time; ``null``: none). The cost of
a measurement is about proportional to the subset, so the monitor keeps measuring every scheduled epoch and
shrinks the subset instead: when a measurement took more than the budget's share of an epoch's training (the mean
so far), the next ones use a prefix of the same seeded subset, scaled down by that ratio with a 20 % margin, but
never below ``MIN_SAMPLES`` reference images. The first measurement's size is forecast from the epoch's image count
(``OnlineMonitor._forecast_size``), so that it does not spend the budget of several epochs at once. Only the subset
ever shrinks (so a shrink happens in the first epochs and the series is comparable after it; each row logs its
size). At the minimum size an epoch is skipped (never the last) only when measuring it and every later scheduled
epoch would take the monitors past the budget of the whole run, and measuring it would also take them past the
budget of the training so far (``OnlineMonitor._skip``; it forecasts a measurement's cost as the median at the
current size after the first, and the first two at each size are always taken, since the first is cold).
benchmarks/monitor_cost.py measures the share. Why the minimum is as low as 64: a digits epoch trains on 1,294
images (~0.25 s), and 5 % of it pays for ~400 image forwards in eval mode, while a measurement forwards the
references, then the queries 5 times (features, two views, posterior, noise); with 128 references the monitors
still skipped epochs (docs/benchmarks.md, "The online monitors' cost"). On MNIST-sized epochs the full 512 fit.

It changes no training result: the method is evaluated in eval mode under ``torch.no_grad()`` (batch-norm
statistics untouched), train mode is restored, and every random draw comes from the monitor's own generator
(the trainer re-seeds the global generator at every step anyway). Tested: the same weights with and without.
"""

from __future__ import annotations

import math
import statistics
import time
from typing import Any

import torch
from torch import Tensor

from probssl.augment import augmenter_from_config
from probssl.data import to_float_images
from probssl.evaluation.alignment import alignment, uniformity
from probssl.evaluation.features import extract
from probssl.evaluation.geometry import effective_rank
from probssl.evaluation.probes import knn_predict, standardize
from probssl.evaluation.uncertainty import auroc
from probssl.train import Callback, autocast
from probssl.train.callbacks import register_default_callback

__all__ = ["OnlineMonitor", "posterior_statistics", "ridge_probe_accuracy"]


def ridge_probe_accuracy(train_x: Tensor, train_y: Tensor, query_x: Tensor, query_y: Tensor, num_classes: int) -> float:
    """Closed-form ridge regression on one-hot targets: train [N, D], query [M, D] -> accuracy on the queries."""
    tr, q = standardize(train_x.double(), query_x.double())
    gram = tr.T @ tr
    lam = 1e-2 * float(gram.diagonal().mean()) + 1e-8
    targets = torch.nn.functional.one_hot(train_y.long(), num_classes).double()
    weights = torch.linalg.solve(gram + lam * torch.eye(gram.shape[0], dtype=gram.dtype), tr.T @ targets)
    return float(((q @ weights).argmax(1) == query_y).double().mean())


def _quantiles(prefix: str, u: Tensor) -> dict[str, float]:
    u = u.detach()
    q = torch.quantile(u.double(), torch.tensor([0.1, 0.9], dtype=torch.float64))
    return {f"{prefix}/mean": float(u.mean()), f"{prefix}/q10": float(q[0]), f"{prefix}/q90": float(q[1])}


MIN_SAMPLES = 64  # the fewest reference images (32 queries) the budget may shrink to; why 64: the module docstring
INPUT_CACHE_BYTES = 256 * 2**20  # inputs kept between measurements up to this size (ImageNet-sized ones are remade)
SHRINK_MARGIN = 0.8  # a shrunk subset aims at 80 % of the budget: the cost is not exactly proportional to it


class OnlineMonitor(Callback):
    """The trainer callback described in the module docstring."""

    def __init__(
        self, every: int, samples: int = 512, seed: int = 0, budget: float | None = 0.05, every_steps: int = 0
    ):
        self.every, self.samples, self.seed, self.budget = every, samples, seed, budget
        self.every_steps = every_steps
        self.rows: tuple[Tensor, Tensor] | None = None  # the seeded subset at its full size
        self.size = samples  # reference images in use: a prefix of rows[0] (queries: half as many)
        self.spent = 0.0  # seconds spent monitoring
        self.last_cost = 0.0  # seconds the latest measurement took
        self.measured_epochs = 0
        self.costs_at_size: list[float] = []  # seconds of each measurement at the current size (the first is cold)
        self.started = 0.0
        self._inputs: dict[str, Any] | None = None  # inputs(): made once per size
        self.start_epoch = 0  # the trainer's epoch when this fit started (a resumed run starts past 0)

    def on_fit_start(self, trainer) -> None:
        g = torch.Generator().manual_seed(self.seed)
        n_train, n_val = len(trainer.splits.train), len(trainer.splits.val)
        train_rows = torch.randperm(n_train, generator=g)[: min(self.samples, n_train)]
        val_rows = torch.randperm(n_val, generator=g)[: min(max(self.samples // 2, 1), n_val)]
        self.rows = (train_rows, val_rows)
        self.size = max(self._min_size(), min(len(train_rows), self._forecast_size(trainer)))
        self.started, self.spent, self.last_cost, self.measured_epochs = time.perf_counter(), 0.0, 0.0, 0
        self.costs_at_size, self._inputs = [], None
        self.start_epoch = trainer.epoch

    def _forecast_size(self, trainer) -> int:
        """The first measurement's size, forecast so that it fits the budget before any cost is known: a training
        step's forward and backward of one view cost about 3 eval-mode forwards, and a measurement forwards each
        reference once and each query (half as many) 3 times (features, two views), 5 for probabilistic methods
        (+ posterior, noise). Training's augmentation and optimiser make the forecast cautious; measured costs
        then shrink the subset further if needed."""
        if self.budget is None:
            return len(self.rows[0])
        views = trainer.config.augment.views
        by_epoch = trainer.steps_per_epoch * self.every if self.every > 0 else None
        steps = min(s for s in (by_epoch, self.every_steps or None) if s)  # the shortest interval between two
        forwards = 3 * views * steps * trainer.batch_size
        per_reference = 1 + 0.5 * (5 if trainer.method.probabilistic else 3)
        return int(self.budget * SHRINK_MARGIN * forwards / per_reference)

    def on_step_end(self, trainer, stats) -> None:
        """``train.monitor_every_steps``: a measurement every N steps too (not at an epoch's last step, which the
        epoch's own measurement covers when it is scheduled), at the current size, skipped while the monitors are
        over the budget of the training so far (the subset is sized by the epoch measurements)."""
        n = self.every_steps
        if n <= 0 or trainer.step % n or trainer.batch_in_epoch >= trainer.steps_per_epoch:
            return
        if not trainer.dist.is_main or len(trainer.splits.val) < 2:
            return
        training = time.perf_counter() - self.started - self.spent
        if self.budget is not None and self.spent + self.last_cost > self.budget * training:
            return
        self._measure_and_log(trainer)

    def on_epoch_end(self, trainer) -> None:
        if self.every <= 0 or trainer.epoch % self.every or not trainer.dist.is_main or len(trainer.splits.val) < 2:
            return
        training = time.perf_counter() - self.started - self.spent
        if self._skip(training, trainer) and trainer.step < trainer.total_steps:
            return  # over budget even at the minimum size: skip this epoch (the last epoch is always measured)
        self._measure_and_log(trainer)
        self._fit_size_to_budget(training / max(trainer.epoch - self.start_epoch, 1) * self.every)

    def _measure_and_log(self, trainer) -> None:
        tic = time.perf_counter()
        was_training = trainer.method.training
        try:
            with torch.no_grad():
                record = self.measure(trainer)
        finally:
            trainer.method.train(was_training)
        self.last_cost = time.perf_counter() - tic
        self.spent += self.last_cost
        self.measured_epochs += 1
        self.costs_at_size.append(self.last_cost)
        record["monitor/seconds"] = round(self.last_cost, 4)  # so any run's monitor share can be read off its log
        record["monitor/seconds_total"] = round(self.spent, 4)
        trainer.log_extra(record)

    def _skip(self, training: float, trainer) -> bool:
        """Whether to skip this epoch, once the subset cannot shrink: when neither measuring every remaining
        scheduled epoch at the last cost fits the budget of the whole run (its training time projected from the
        epochs so far), nor this one measurement fits the budget of the training so far. The first lets a run whose
        measurements fit in the steady state pay for its first, cold, measurement over the whole run instead of
        skipping early epochs; the second spaces the measurements out when they do not fit. The first two
        measurements at a size are always taken: the first is cold (kernels for new tensor shapes, memory), and
        the rule forecasts with the median of the later ones (one slow measurement is not a trend)."""
        if self.budget is None or self.size > self._min_size() or len(self.costs_at_size) < 2:
            return False
        forecast = statistics.median(self.costs_at_size[1:])
        if self.spent + forecast <= self.budget * training:
            return False
        done = max(trainer.epoch - self.start_epoch, 1)
        total_epochs = math.ceil(trainer.total_steps / max(trainer.steps_per_epoch, 1))
        remaining = (total_epochs - trainer.epoch) // self.every + 1
        projected_training = training / done * (total_epochs - self.start_epoch)
        return self.spent + forecast * remaining > self.budget * projected_training

    def _min_size(self) -> int:
        return min(MIN_SAMPLES, len(self.rows[0]))

    def _fit_size_to_budget(self, training_per_measurement: float) -> None:
        """Shrink the subset when the last measurement cost more than the budget's share of the training between
        two measurements (seconds, the mean so far): sizes scale with the ratio, less a margin."""
        if self.budget is None or self.last_cost <= self.budget * training_per_measurement:
            return
        ratio = self.budget * training_per_measurement / self.last_cost
        size = max(self._min_size(), min(self.size, int(self.size * ratio * SHRINK_MARGIN)))
        if size != self.size:
            self.size, self.costs_at_size = size, []

    def subset(self) -> tuple[Tensor, Tensor]:
        """The reference rows (training split) and query rows (validation split) in use."""
        train_rows, val_rows = self.rows
        return train_rows[: self.size], val_rows[: max(self.size // 2, 2)]  # >= 2 queries: rank, uniformity

    def inputs(self, trainer) -> dict[str, Any]:
        """The measurement's network inputs at the current size, made once per size (they do not depend on the
        weights): float ``images`` = references, queries and the queries' two seeded views, ``[R + 3Q, C, H, W]``;
        ``posterior_images`` = queries then as many uniform-noise images, ``[2Q, C, H, W]``; labels; R and Q. Kept
        between measurements while they take <= ``INPUT_CACHE_BYTES``."""
        if self._inputs is not None and self._inputs["size"] == self.size:
            return self._inputs
        splits = trainer.splits
        train_rows, val_rows = self.subset()
        ref_x, query_x = splits.train.images[train_rows], splits.val.images[val_rows]
        g = torch.Generator().manual_seed(self.seed)
        views = augmenter_from_config(trainer.config.augment, splits.image_shape)(query_x, views=2, generator=g)
        query = to_float_images(query_x)
        noise = torch.rand(query.shape, generator=g)
        inputs = {
            "size": self.size,
            "images": torch.cat([to_float_images(ref_x), query, views.reshape(-1, *views.shape[2:])]),
            "posterior_images": torch.cat([query, noise]),
            "ref_y": splits.train.labels[train_rows],
            "query_y": splits.val.labels[val_rows],
            "n_ref": len(ref_x),
            "n_query": len(query_x),
        }
        nbytes = inputs["images"].nbytes + inputs["posterior_images"].nbytes
        self._inputs = inputs if nbytes <= INPUT_CACHE_BYTES else None
        return inputs

    def measure(self, trainer) -> dict[str, Any]:
        method, device, splits = trainer.method, trainer.device, trainer.splits
        x = self.inputs(trainer)
        n_ref, n_q = x["n_ref"], x["n_query"]
        # One forward for references, queries and both views: at the small sizes the budget allows on tiny
        # datasets, each extra call's fixed cost (eval toggles, autocast, checks) is a large share of the time.
        feats = extract(method, x["images"], method.default_representation, 1024, device, trainer.precision)
        ref, query = feats[:n_ref], feats[n_ref : n_ref + n_q]
        z1, z2 = feats[n_ref + n_q :].reshape(2, n_q, -1)
        out = {
            "monitor/samples": n_ref,
            "monitor/effective_rank": effective_rank(query),
            "monitor/uniformity": uniformity(query, max_samples=1000, seed=self.seed),
            "monitor/alignment": alignment(z1, z2),
        }
        if splits.labelled:  # unlabelled images: only the label-free monitors
            ref_y, query_y = x["ref_y"], x["query_y"]
            knn = knn_predict(ref, ref_y, query, min(20, n_ref), splits.num_classes)
            out["monitor/knn_acc"] = float((knn == query_y).double().mean())
            out["monitor/linear_acc"] = ridge_probe_accuracy(ref, ref_y, query, query_y, splits.num_classes)
        if method.probabilistic:
            with autocast(torch.device(device), trainer.precision):
                out.update(self._uncertainty(method, x["posterior_images"].to(device), n_q))
        return out

    def _uncertainty(self, method, both: Tensor, n: int) -> dict[str, float]:
        """The default score's quantiles on the queries (the first ``n`` of ``both``) and its AUROC against the
        uniform-noise images after them, then the posterior's own statistics on the queries; all go through the
        network together, in the training precision (the posterior's densities and scores stay float32 inside
        autocast)."""
        method.eval()
        default = method.uncertainty_kinds()[0]
        features, q = method.features_and_posterior(both)  # one backbone pass for every score below
        if default in method.extra_uncertainty_kinds():  # e.g. a density fitted when training ended
            u_all = method.extra_uncertainty_of(both, features, q)[default].float().cpu()
        else:
            u_all = q.uncertainty(default).float().cpu()
        out = _quantiles(f"monitor/u_{default}", u_all[:n])
        out["monitor/ood_auroc_noise"] = auroc(u_all[n:], u_all[:n])
        if "log_det_cov" in method.posterior_class.uncertainty_kinds() and default != "log_det_cov":
            out.update(_quantiles("monitor/u_log_det_cov", q.uncertainty("log_det_cov").float().cpu()[:n]))
        out.update(posterior_statistics(method, q, n))
        return out


def posterior_statistics(method, q, n: int) -> dict[str, float]:
    """Mean, 10 % and 90 % quantiles over the first ``n`` images of a posterior batch, of what its family has:
    ``monitor/sigma`` (each image's mean scale sigma_i), ``monitor/loc_norm`` (the norm of the Gaussian's mean m,
    whose length is VCL's concentration on the sphere), ``monitor/kappa`` (a sphere family's concentration) and
    ``monitor/kl`` (the method's KL term per image, before its weight beta: ``Method.kl_to_prior``)."""
    out: dict[str, float] = {}
    if getattr(q, "concentration", None) is not None:
        out.update(_quantiles("monitor/kappa", q.concentration.float().cpu()[:n]))
    elif getattr(q, "loc", None) is not None:
        out.update(_quantiles("monitor/loc_norm", q.loc.float().norm(dim=-1).cpu()[:n]))
    if getattr(q, "scale", None) is not None and q.scale.dim() == 2:
        out.update(_quantiles("monitor/sigma", q.scale.float().mean(-1).cpu()[:n]))
    kl = method.kl_to_prior(q)
    if kl is not None:
        out.update(_quantiles("monitor/kl", kl.float().cpu()[:n]))
    return out


@register_default_callback
def _monitor_from_config(config) -> OnlineMonitor | None:
    t = config.train
    if t.monitor_every <= 0 and t.monitor_every_steps <= 0:
        return None
    return OnlineMonitor(t.monitor_every, t.monitor_samples, t.seed, t.monitor_budget, t.monitor_every_steps)
