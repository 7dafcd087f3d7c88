"""Batched, device-agnostic SSL augmentations (pure torch).

Every op acts on a whole float [N, C, H, W] batch in [0, 1] (C = 1 or 3) on any device, with per-sample
parameters drawn on the CPU from a seedable ``torch.Generator`` and then moved to the images' device, so
a seed gives the same result on CPU and GPU. There is no per-image Python loop.

Typical use::

    aug = Augmenter(recipe("simclr", channels=3))
    views = aug(images, views=2, generator=torch.Generator().manual_seed(0))  # [2, N, 3, H, W]
"""

# The package exports exactly what each module lists in its __all__.
from . import blur, color, geometric, pipeline
from .blur import *  # noqa: F401,F403
from .color import *  # noqa: F401,F403
from .geometric import *  # noqa: F401,F403
from .pipeline import *  # noqa: F401,F403

__all__ = [*pipeline.__all__, *geometric.__all__, *color.__all__, *blur.__all__]
