"""The method interface that every SSL method follows.

A method answers two questions and nothing else:
  * how does a batch of augmented views (and labels, when supervised) become named loss terms?
  * how does an image become a posterior over its embedding?
Loops, devices, checkpoints and logging live once, in :mod:`probssl.train`.

One vocabulary across methods (as timm's ``forward_features`` / ``forward_head``):
  * ``forward_features(images [N, C, H, W]) -> [N, F]``: the backbone;
  * ``forward_head(features [..., F]) -> ...``: whatever the method's head makes of them (unit-norm
    projections, ``(loc, scale)`` of a posterior, a latent posterior, ...; each method documents it);
  * ``posterior_from_features(features [N, F]) -> Posterior``: q(z|x) from the backbone's features (see
    :mod:`probssl.distributions.base` for the contract), so that ``posterior(images)`` is
    ``posterior_from_features(forward_features(images))`` and every score of an image needs one backbone pass
    (``features_and_posterior``); a method whose posterior does not factor this way overrides ``posterior``;
  * ``represent(images, kind)``: the representation evaluated downstream.

Each method owns its hyper-parameters: a :class:`~probssl.config.MethodConfig` subclass set as
``config_class``, registered with the method, whose ``check()`` holds the method's own value checks.

Loss prediction (Kirchhof et al. 2024, "Pretrained Visual Uncertainties"), generic to every method that
implements ``per_sample_loss(views, labels) -> [N]``: when the method's config has ``loss_prediction: true``
(the contrastive configs inherit the field from ``SimCLRConfig``), ``from_config`` of every subclass attaches
a :class:`LossPredictor`, a small MLP on DETACHED backbone features trained to predict each sample's SSL
loss; ``forward`` adds its training term ``loss_prediction``. The backbone, heads and their gradients are
exactly those of the run without it (the predictor sees detached inputs and a detached target).

Input checks: ``posterior``, ``features_and_posterior``, ``represent`` and ``uncertainty`` -- of this class and
of every subclass that overrides them (:meth:`Method.__init_subclass__` wraps them) -- pass their images through :meth:`Method.check_images`
first: uint8 is converted as training converts it (``probssl.data.to_float_images``: x / 255), float is checked to
be finite and in [0, 1], the shape against the model's ``image_shape`` (set by ``create_method``), and the tensor is
moved to the model's device; anything else is one ValueError / TypeError naming what was expected and what came.
A nested call (``represent`` -> ``posterior``) is checked once.

Scores that are not a property of the posterior family (such as the predicted loss) come from
``extra_uncertainty(images) -> {name: [N]}`` and ``extra_uncertainty_kinds()``; evaluation reads these next
to the family's ``uncertainty_kinds()``; ``uncertainty(images, kind)`` returns either kind.
"""

from __future__ import annotations

import contextlib
import functools
from collections.abc import Callable, Iterator
from typing import ClassVar

import torch
import torch.nn.functional as F
from torch import Tensor, nn

from probssl.config import MethodConfig
from probssl.data import to_float_images
from probssl.distributions import PointMass, Posterior, StraightThroughBernoulli
from probssl.methods.epistemic import FeatureDensity

REPRESENTATIONS = ("backbone", "mean", "direction", "sample", "bits")
#: Training objectives of the :class:`LossPredictor`: the paper's pairwise ranking hinge, or squared error.
LOSS_PREDICTION_OBJECTIVES = ("order", "mse")
PREDICTED_LOSS = "predicted_loss"
#: Entry points whose image argument :meth:`Method.check_images` checks (also when a subclass overrides them).
CHECKED_ENTRY_POINTS = ("posterior", "represent", "uncertainty")
# Float pixels may exceed [0, 1] by this much (rounding of resizes and blends) before they count as out of range.
_RANGE_TOLERANCE = 1e-3


def _checks_input(fn: Callable) -> Callable:
    """Wrap a method entry point ``fn(self, images, ...)`` so that ``images`` goes through ``check_images`` first,
    once per outermost call (a nested entry point sees the already-checked tensor)."""
    if getattr(fn, "_checks_input", False):
        return fn

    @functools.wraps(fn)
    def checked(self, *args, **kwargs):
        if self.__dict__.get("_checking_input", False) or not (args or "images" in kwargs):
            return fn(self, *args, **kwargs)
        if args:
            args = (self.check_images(args[0], fn.__name__), *args[1:])
        else:
            kwargs["images"] = self.check_images(kwargs["images"], fn.__name__)
        self.__dict__["_checking_input"] = True
        try:
            return fn(self, *args, **kwargs)
        finally:
            self.__dict__["_checking_input"] = False

    checked._checks_input = True  # type: ignore[attr-defined]
    return checked


def loss_order_hinge(pred: Tensor, target: Tensor, gap: float = 0.1) -> Tensor:
    """Pairwise ranking loss of predicted vs. true losses ("losspred-order" of Kirchhof et al. 2024).

    Samples are paired as (0, 1), (2, 3), ... along the last axis (an odd last sample is left out); for a
    pair (a, b) with s = sign(target_a - target_b) the loss is max(0, gap - s * (pred_a - pred_b)): the
    prediction has to order the pair like the true losses, by a margin ``gap``. Only the ORDER of the
    losses is learned, so the target's scale drifting during training (losses fall) does not matter.

    Args:
        pred, target: [..., M] predicted and true per-sample losses (target detached by the caller).
    Returns:
        scalar: mean over the [..., M // 2] pairs.
    """
    m = pred.shape[-1] // 2 * 2
    if m == 0:
        raise ValueError("loss_order_hinge needs at least two samples")
    p = pred[..., :m].unflatten(-1, (m // 2, 2))
    t = target[..., :m].unflatten(-1, (m // 2, 2))
    sign = torch.sign(t[..., 0] - t[..., 1])  # ties: 0, a constant `gap` with no gradient
    return F.relu(gap - sign * (p[..., 0] - p[..., 1])).mean()


class LossPredictor(nn.Module):
    """Per-sample loss predictor (Kirchhof et al. 2024): ``[..., F]`` features -> ``[...]`` predicted loss > 0.

    ``(Linear-LeakyReLU) x depth + Linear(hidden, 1)``, then ``softplus + 1e-6`` (the paper's
    ``UncertaintyNetwork``; its default ``unc_depth=2`` hidden layers, width 512). The caller detaches the
    features, so training it cannot change the backbone.

    objective: "order" (:func:`loss_order_hinge`, the paper's default ``losspred-order``, margin 0.1) or
    "mse" (the paper's ``losspred`` alternative: squared error to the loss values).
    """

    eps = 1e-6

    def __init__(self, in_dim: int, hidden_dim: int = 512, depth: int = 2, objective: str = "order"):
        super().__init__()
        if objective not in LOSS_PREDICTION_OBJECTIVES:
            raise ValueError(f"objective must be one of {', '.join(LOSS_PREDICTION_OBJECTIVES)}, got {objective!r}")
        if depth < 1:
            raise ValueError(f"depth must be >= 1, got {depth}")
        layers: list[nn.Module] = []
        prev = in_dim
        for _ in range(depth):
            layers += [nn.Linear(prev, hidden_dim), nn.LeakyReLU()]
            prev = hidden_dim
        self.net = nn.Sequential(*layers, nn.Linear(prev, 1))
        self.in_dim, self.objective = in_dim, objective

    def forward(self, features: Tensor) -> Tensor:
        """[..., F] -> [...] predicted loss (> 0)."""
        return F.softplus(self.net(features)).squeeze(-1) + self.eps

    def training_loss(self, pred: Tensor, target: Tensor) -> Tensor:
        """Scalar objective between predictions [..., M] and DETACHED true losses [..., M]."""
        if self.objective == "mse":
            return F.mse_loss(pred, target)
        return loss_order_hinge(pred, target)


@contextlib.contextmanager
def _batch_statistics_only(module: nn.Module) -> Iterator[None]:
    """Normalisation layers use the batch's statistics (as in training) but do not update their running
    statistics inside the block, so an extra forward pass leaves the model's state as it was.

    (Restoring the buffers afterwards would not do: the training pass's autograd graph saved them, and
    any in-place change before its backward is an error.)
    """
    layers = [m for m in module.modules() if isinstance(m, nn.modules.batchnorm._NormBase) and m.track_running_stats]
    for m in layers:
        m.track_running_stats = False  # _NormBase then passes no running statistics to the kernel
    try:
        yield
    finally:
        for m in layers:
            m.track_running_stats = True


#: The epistemic head is fitted on at most this many training images: every image of MNIST-, CIFAR- or STL-sized
#: data, and a bounded sample of ImageNet-sized data (1.28M x 2048 float64 features would need ~20 GB).
DENSITY_FIT_IMAGES = 100_000


def density_fit_batches(n: int, batch_size: int, limit: int | None = None, seed: int = 0) -> list[int]:
    """Start indices of the contiguous batches ``[i, i + batch_size)`` the head is fitted on: all of them when the
    ``n`` images fit in ``limit`` (default ``DENSITY_FIT_IMAGES``), else a seeded random choice of batches holding
    about ``limit`` images, in order (contiguous slices, so a streamed split is read in blocks)."""
    limit = DENSITY_FIT_IMAGES if limit is None else limit
    starts = list(range(0, n, batch_size))
    if n <= limit:
        return starts
    keep = max(1, -(-limit // batch_size))
    chosen = torch.randperm(len(starts), generator=torch.Generator().manual_seed(seed))[:keep]
    return [starts[i] for i in sorted(chosen.tolist())]


class Method(nn.Module):
    """Base class: a backbone plus whatever head and loss the method adds.

    Subclasses implement :meth:`loss_terms` and :meth:`posterior_from_features` (or :meth:`posterior`, when
    their posterior does not factor through the backbone features). ``forward`` is ``loss_terms``
    so that wrappers such as DistributedDataParallel see the whole computation.
    """

    name: ClassVar[str] = ""
    supervised: ClassVar[bool] = False  # loss_terms needs labels
    probabilistic: ClassVar[bool] = False  # posterior is not a point mass
    default_representation: ClassVar[str] = "backbone"
    #: The method's hyper-parameters (``config.method`` is an instance of it).
    config_class: ClassVar[type[MethodConfig]] = MethodConfig
    #: The family ``posterior()`` returns (an instance may set its own, as SCL does per latent).
    posterior_class: ClassVar[type[Posterior]] = PointMass
    #: The score reported as "the" uncertainty: a posterior score or a head's (e.g. ``epistemic``); None: the
    #: posterior family's default. A head's score applies once the head is fitted (when training ends).
    default_uncertainty: ClassVar[str | None] = None
    #: The evidence-chosen posterior score: the default until a head's score is available, and the aleatoric part
    #: of ``combined``; None: ``default_uncertainty`` when it is a posterior score, else the family's default.
    posterior_uncertainty: ClassVar[str | None] = None

    def __init_subclass__(cls, **kwargs) -> None:
        super().__init_subclass__(**kwargs)
        for name in CHECKED_ENTRY_POINTS:  # a subclass's own posterior / represent checks its input too
            if name in cls.__dict__:
                setattr(cls, name, _checks_input(cls.__dict__[name]))

    def __init__(self, backbone: nn.Module):
        super().__init__()
        self.backbone = backbone
        #: (C, H, W) the model was built for (``create_method`` sets it); None: only dtype, range and device are checked.
        self.image_shape: tuple[int, int, int] | None = None
        self.loss_predictor: LossPredictor | None = None  # see attach_loss_predictor
        self.feature_density: FeatureDensity | None = None  # see attach_feature_density
        self._feature_tap: list[Tensor] | None = None  # encode_views records its features here when a list

    @classmethod
    def from_config(cls, backbone: nn.Module, config, image_shape: tuple[int, int, int]) -> Method:
        """Build the method from a :class:`probssl.config.Config` around ``backbone``."""
        raise NotImplementedError

    # ------------------------------------------------------------------ the two questions
    def loss_terms(self, views: Tensor, labels: Tensor | None = None) -> dict[str, Tensor]:
        """[V, N, C, H, W] float views (+ [N] labels) -> named scalar loss terms.

        Each term is already weighted; the training loss is their sum.
        """
        raise NotImplementedError

    def posterior_from_features(self, features: Tensor) -> Posterior:
        """[N, F] backbone features -> q(z|x) with batch_shape [N] and event_shape [d]."""
        raise NotImplementedError(
            f"method {self.name!r} defines neither posterior_from_features(features) nor posterior(images)"
        )

    @_checks_input
    def posterior(self, images: Tensor) -> Posterior:
        """[N, C, H, W] images (uint8, or float in [0, 1]) -> q(z|x) with batch_shape [N] and event_shape [d]."""
        return self.posterior_from_features(self.forward_features(images))

    @_checks_input
    def features_and_posterior(self, images: Tensor) -> tuple[Tensor, Posterior]:
        """[N, C, H, W] -> (backbone features [N, F], q(z|x)), in one backbone pass when the posterior is made from
        the features (every built-in method); in two when a subclass overrides ``posterior`` itself."""
        if not self.posterior_factors():
            return self.forward_features(images), self.posterior(images)
        features = self.forward_features(images)
        return features, self.posterior_from_features(features)

    @classmethod
    def posterior_factors(cls) -> bool:
        """Whether ``posterior(images)`` is ``posterior_from_features(forward_features(images))`` (no subclass
        overrides ``posterior``)."""
        return not cls.overrides("posterior")

    @classmethod
    def overrides(cls, name: str) -> bool:
        """Whether a subclass replaced the base class's ``name`` (e.g. a plugin's own ``represent``): the shared
        one-pass paths then ask it instead of making its result from a pass they already ran."""
        return getattr(cls, name) is not getattr(Method, name)

    def kl_to_prior(self, posterior: Posterior) -> Tensor | None:
        """[B] the KL term this method's loss puts on each posterior (before its weight beta), or None when the
        method has no per-image KL to a fixed prior (SimVAE's prior ties the views together). The online monitors
        log its quantiles; a method with a KL term overrides this."""
        return None

    # ------------------------------------------------------------------ input checks
    def check_images(self, images: object, where: str = "posterior") -> Tensor:
        """The images ``where`` (posterior / represent / uncertainty) was given, as the model sees them in training.

        images: ``[N, C, H, W]`` uint8 (0..255, converted by x / 255 as training does) or float (finite, in
        [0, 1]) -> float32 ``[N, C, H, W]`` on the model's device.

        Raises:
            TypeError: not a tensor, or a dtype other than uint8 / float.
            ValueError: not 4-d, a (C, H, W) other than ``image_shape``, NaN / inf, or float pixels outside [0, 1].
        """
        what = f"{type(self).__name__}.{where}"
        expected = "[N, {}, {}, {}]".format(*self.image_shape) if self.image_shape else "[N, C, H, W]"
        if not isinstance(images, Tensor):
            raise TypeError(
                f"{what} expects a torch.Tensor {expected} (uint8 0..255 or float in [0, 1]), got "
                f"{type(images).__name__}; e.g. torch.from_numpy(array).permute(0, 3, 1, 2) for [N, H, W, C] arrays."
            )
        if images.dtype != torch.uint8 and not images.is_floating_point():
            raise TypeError(f"{what} expects uint8 (0..255) or float (0..1) images {expected}, got {images.dtype}.")
        if images.dim() != 4:
            hint = " (one image: images.unsqueeze(0))" if images.dim() == 3 else ""
            raise ValueError(f"{what} expects images {expected}, got shape {list(images.shape)}{hint}.")
        if self.image_shape is not None and tuple(images.shape[1:]) != tuple(self.image_shape):
            c, h, w = self.image_shape
            channels_last = tuple(images.shape[1:]) == (h, w, c)
            hint = " (channels last: images.permute(0, 3, 1, 2))" if channels_last else ""
            raise ValueError(
                f"{what} expects images {expected} (the shape the model was trained on), got shape "
                f"{list(images.shape)}{hint}; resize them as the training data was (data.image_size, data.resize)."
            )
        device = _parameter_device(self)
        images = images.to(device) if device is not None and images.device != device else images
        if images.dtype == torch.uint8:
            return to_float_images(images)
        if images.numel():
            low, high = (float(v) for v in torch.aminmax(images.detach().float()))
            if not (low == low and high == high) or abs(low) == float("inf") or abs(high) == float("inf"):
                raise ValueError(f"{what} got non-finite pixels (NaN or inf) in its float images.")
            if low < -_RANGE_TOLERANCE or high > 1 + _RANGE_TOLERANCE:
                raise ValueError(
                    f"{what} expects float pixels in [0, 1] (training saw uint8 / 255), got the range "
                    f"[{low:.3g}, {high:.3g}]{_range_hint(low, high)}."
                )
        return images.float()

    # ------------------------------------------------------------------ shared helpers
    def per_sample_loss(self, views: Tensor, labels: Tensor | None = None) -> Tensor:
        """[V, N, C, H, W] views (+ [N] labels) -> [N]: each image's share of the training loss.

        The sum of the method's weighted loss terms per image (averaged over the image's views as
        anchors), so that, under the same random draws, ``per_sample_loss(views).mean()`` equals
        ``sum(loss_terms(views).values())``. Methods without one raise NotImplementedError.
        """
        raise NotImplementedError(f"method {self.name!r} has no per-sample loss")

    def forward(self, views: Tensor, labels: Tensor | None = None) -> dict[str, Tensor]:
        terms = self.loss_terms(views, labels)
        if self.loss_predictor is not None:  # after loss_terms: its random draws are the run's without it
            terms["loss_prediction"] = self.loss_prediction_term(views, labels)
        return terms

    # ------------------------------------------------------------------ loss prediction
    def attach_loss_predictor(self, hidden_dim: int = 512, depth: int = 2, objective: str = "order") -> None:
        """Add a :class:`LossPredictor` on the backbone features (``method.loss_prediction: true``)."""
        if not self.overrides("per_sample_loss"):
            raise ValueError(f"loss_prediction needs a per-sample loss, which method {self.name!r} does not define")
        self.loss_predictor = LossPredictor(int(self.backbone.feature_dim), hidden_dim, depth, objective)

    def loss_prediction_term(self, views: Tensor, labels: Tensor | None = None) -> Tensor:
        """Scalar training term of the loss predictor; no gradient reaches anything but the predictor.

        The target is ``per_sample_loss`` [N] from an extra forward pass without autograd (BatchNorm uses
        the batch's statistics without updating its running ones, so the model's state is the run's without
        the predictor); the predictor sees every view's detached backbone features [V, N, F] and predicts
        the image's loss from each of them. Cost: one more forward pass of the method per step.
        """
        self._feature_tap = []
        try:
            with torch.no_grad(), _batch_statistics_only(self):
                target = self.per_sample_loss(views, labels).float()
            tapped = self._feature_tap
        finally:
            self._feature_tap = None
        with torch.no_grad():  # a method whose loss does not go through encode_views: one more pass
            feats = tapped[0] if tapped else self.encode_views(views)
        pred = self.loss_predictor(feats.float())  # [V, N]
        return self.loss_predictor.training_loss(pred, target.expand_as(pred))

    def match_state(self, state: dict) -> None:
        """Fit the optional feature-density head to a checkpoint, so ``load_state_dict(state)`` fits: drop it when
        the checkpoint has none (a run written before the method's default carried it), attach it when the
        checkpoint has one (a run written with ``method.epistemic: true``, resumed without)."""
        if self.feature_density is not None and "feature_density.fitted" not in state:
            self.feature_density = None
        elif self.feature_density is None and "feature_density.fitted" in state:
            self.attach_feature_density()

    def attach_feature_density(self) -> None:
        """Carry an epistemic density of the backbone features (``method.epistemic: true``), fitted by
        :meth:`on_train_end`."""
        self.feature_density = FeatureDensity(int(self.backbone.feature_dim))

    def on_train_end(self, images: Tensor, batch_size: int = 512) -> None:
        """Called by the trainer when training finishes, before the final checkpoint, with the training images
        (uint8 [N, C, H, W]): fits the feature density and the scales of the combined score (if attached), on at
        most ``DENSITY_FIT_IMAGES`` of them (:func:`density_fit_batches`)."""
        if self.feature_density is None:
            return
        was_training = self.training
        self.eval()
        feats, aleatoric = [], []
        with torch.no_grad():
            for i in density_fit_batches(len(images), batch_size):
                x = to_float_images(images[i : i + batch_size])
                if self.probabilistic:
                    features, q = self.features_and_posterior(x)
                    aleatoric.append(q.uncertainty(self.aleatoric_kind()).float().cpu())
                else:
                    features = self.forward_features(x)
                feats.append(features.float().cpu())
            features = torch.cat(feats)
            self.feature_density.fit(features)
            density = self.feature_density.distance(features)
            self.feature_density.set_stats(torch.cat(aleatoric) if aleatoric else torch.zeros_like(density), density)
        self.train(was_training)

    def aleatoric_kind(self) -> str:
        """The posterior score the combined score uses and the default falls back to before a head is fitted: the
        method CLASS's evidence-chosen posterior score (``posterior_uncertainty``, else ``default_uncertainty``) when
        the family has it (a config's ``uncertainty_score`` does not change it), else the family's default."""
        kinds = self.posterior_class.uncertainty_kinds()
        cls = type(self)
        return next((k for k in (cls.posterior_uncertainty, cls.default_uncertainty) if k in kinds), kinds[0])

    @torch.no_grad()
    def extra_uncertainty(self, images: Tensor, only: str | None = None) -> dict[str, Tensor]:
        """[N, C, H, W] -> {score name: [N]} of scores that are not the posterior family's (higher = more
        uncertain): ``predicted_loss`` with a loss predictor, ``epistemic`` and ``combined`` with a fitted feature
        density. ``uncertainty_kinds()`` lists them after the family's. ``only``: one of them is needed (the
        posterior, which ``combined`` needs, is made only when ``combined`` is asked for)."""
        if self.probabilistic and only in (None, "combined") and "combined" in self.extra_uncertainty_kinds():
            features, q = self.features_and_posterior(images)
            return self.extra_uncertainty_from(features, q)
        return self.extra_uncertainty_from(self.forward_features(images))

    def extra_uncertainty_of(
        self, images: Tensor, features: Tensor, posterior: Posterior | None = None
    ) -> dict[str, Tensor]:
        """:meth:`extra_uncertainty` of a batch of checked float ``images`` [N, C, H, W] whose backbone features
        [N, F] (and posterior) are made: from them, unless a subclass overrides ``extra_uncertainty`` (then it is
        asked, with the images)."""
        if self.overrides("extra_uncertainty"):
            return self.extra_uncertainty(images)
        return self.extra_uncertainty_from(features, posterior)

    @torch.no_grad()
    def extra_uncertainty_from(self, features: Tensor, posterior: Posterior | None = None) -> dict[str, Tensor]:
        """The scores of :meth:`extra_uncertainty` from an image batch's backbone features [N, F] and, for
        ``combined``, its posterior (None: no ``combined``): {score name: [N]}, without running the network."""
        out = {}
        if self.loss_predictor is not None:
            out[PREDICTED_LOSS] = self.loss_predictor(features.float())
        if self.feature_density is not None and bool(self.feature_density.fitted):
            density = self.feature_density.distance(features)
            out["epistemic"] = density
            if self.probabilistic and posterior is not None:
                aleatoric = posterior.uncertainty(self.aleatoric_kind()).float()
                out["combined"] = self.feature_density.combined(aleatoric, density)
        return out

    def extra_uncertainty_kinds(self, fitted_only: bool = True) -> list[str]:
        """Names of the scores ``extra_uncertainty`` returns (``fitted_only=False``: also those of a feature density
        that is attached but fitted only when training ends)."""
        kinds = [PREDICTED_LOSS] if self.loss_predictor is not None else []
        if self.feature_density is not None and (not fitted_only or bool(self.feature_density.fitted)):
            kinds += ["epistemic", "combined"] if self.probabilistic else ["epistemic"]
        return kinds

    def extra_uncertainty_descriptions(self) -> dict[str, str]:
        """name -> what it measures, for every ``extra_uncertainty_kinds()``."""
        text = {
            PREDICTED_LOSS: "the loss-prediction head's predicted per-sample SSL loss (Kirchhof et al. 2024)",
            "epistemic": "squared Mahalanobis distance of the backbone features to a Gaussian fitted (label-free) to "
            "the training features when training ended: epistemic",
            "combined": "z(aleatoric posterior score) + z(density), each z-scored with the training split's mean "
            "and std: aleatoric + epistemic",
        }
        return {k: text[k] for k in self.extra_uncertainty_kinds()}

    def forward_features(self, images: Tensor) -> Tensor:
        """[N, C, H, W] -> backbone features [N, F]."""
        return self.backbone(images)

    def forward_head(self, features: Tensor):
        """[..., F] backbone features -> the head's output (each method documents what it is)."""
        raise NotImplementedError

    def encode_views(self, views: Tensor) -> Tensor:
        """[V, N, C, H, W] -> backbone features [V, N, F] in one backbone call."""
        v, n = views.shape[:2]
        feats = self.forward_features(views.reshape(v * n, *views.shape[2:])).reshape(v, n, -1)
        if self._feature_tap is not None:
            self._feature_tap.append(feats.detach())
        return feats

    def on_step(self, step: int, total_steps: int) -> None:
        """Called by the trainer before each step (e.g. to anneal a temperature)."""

    def after_optimizer_step(self, step: int, total_steps: int) -> None:
        """Called by the trainer after each optimiser step (e.g. to update a momentum encoder)."""

    @_checks_input
    def uncertainty(self, images: Tensor, kind: str | None = None) -> Tensor:
        """[N, C, H, W] -> the score ``kind`` [N] (default: the method's ``uncertainty_kinds()[0]``): a posterior
        score, or one of ``extra_uncertainty_kinds()`` (predicted loss, density, combined)."""
        kind = kind or self.uncertainty_kinds()[0]
        if kind in self.extra_uncertainty_kinds():
            return self.extra_uncertainty(images, only=kind)[kind]
        return self.posterior(images).uncertainty(kind)

    def uncertainty_kinds(self) -> list[str]:
        """Every score of this method: the posterior family's and the extra ones, the method's default first
        (``default_uncertainty`` when it is available, e.g. a head's once fitted, else :meth:`aleatoric_kind`)."""
        kinds = [*self.posterior_class.uncertainty_kinds(), *self.extra_uncertainty_kinds()]
        default = self.default_uncertainty if self.default_uncertainty in kinds else self.aleatoric_kind()
        return [default, *(k for k in kinds if k != default)]

    @_checks_input
    @torch.no_grad()
    def represent(self, images: Tensor, kind: str = "auto") -> Tensor:
        """[N, C, H, W] -> the representation evaluated downstream, [N, D].

        kind: backbone | mean | direction | sample | bits ('auto' = the method's default).
        'mean' is deterministic: the mean direction for sphere posteriors (whose exact mean has no
        closed form), the mean otherwise; 'direction' is it normalised to unit length.
        """
        kind = self.default_representation if kind == "auto" else kind
        if kind == "backbone":
            return self.forward_features(images)
        return self.representation_from(None, self.posterior(images), kind)

    def representation_from(self, features: Tensor | None, posterior: Posterior | None, kind: str = "auto") -> Tensor:
        """:meth:`represent` of a batch whose backbone features [N, F] and posterior are already made: [N, D]
        (``features`` is needed only for ``backbone``, ``posterior`` for every other kind)."""
        kind = self.default_representation if kind == "auto" else kind
        if kind == "backbone":
            return features
        if kind not in REPRESENTATIONS:
            raise ValueError(f"Unknown representation '{kind}'; choose from auto, {', '.join(REPRESENTATIONS)}")
        q = posterior
        if kind == "bits":
            if not isinstance(q, StraightThroughBernoulli):
                raise ValueError(
                    f"representation 'bits' needs a Bernoulli posterior; {self.name} has {type(q).__name__}"
                )
            return (q.probs > 0.5).float()
        if kind == "sample":
            return q.sample()
        mean = q.mean_direction
        return mean if kind == "mean" else F.normalize(mean, dim=-1)


def _parameter_device(module: nn.Module) -> torch.device | None:
    """The device of the module's first parameter (None for a module without parameters)."""
    for parameter in module.parameters():
        return parameter.device
    return None


def _range_hint(low: float, high: float) -> str:
    if high > 2:
        return ": pixels 0..255 as floats? give them as uint8, or divide by 255"
    if low < 0:
        return ": normalised (mean / std) pixels? give the raw pixels, as in training"
    return ""
