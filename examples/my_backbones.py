"""An example module for `model.backbone: my_backbones:tiny_cnn` (README, "Your own data and backbone")."""

from torch import nn


def tiny_cnn(in_channels: int = 3, width: int = 16) -> nn.Module:
    """Any nn.Module mapping [N, C, H, W] to [N, F] works; probssl finds F with one dry forward."""
    return nn.Sequential(
        nn.Conv2d(in_channels, width, 3, padding=1),
        nn.BatchNorm2d(width),
        nn.ReLU(),
        nn.Conv2d(width, 2 * width, 3, stride=2, padding=1),
        nn.BatchNorm2d(2 * width),
        nn.ReLU(),
        nn.AdaptiveAvgPool2d(1),
        nn.Flatten(),
    )


def make_example_folder(root: str, per_class: int = 12) -> None:
    """Writes ROOT/{train,test}/{circle,square}/*.png of mixed sizes and modes (for the README's commands)."""
    import numpy as np
    from PIL import Image, ImageDraw

    rng = np.random.default_rng(0)
    for split in ("train", "test"):
        for shape in ("circle", "square"):
            folder = __import__("pathlib").Path(root) / split / shape
            folder.mkdir(parents=True, exist_ok=True)
            for i in range(per_class):
                size = int(rng.integers(24, 64))
                img = Image.new("RGB", (size, size + int(rng.integers(0, 16))), (0, 0, 0))
                box = [size * 0.2, size * 0.2, size * 0.8, size * 0.8]
                draw = ImageDraw.Draw(img)
                (draw.ellipse if shape == "circle" else draw.rectangle)(
                    box, fill=tuple(rng.integers(80, 255, 3).tolist())
                )
                mode = ("RGB", "L", "RGBA")[i % 3]
                img.convert(mode).save(folder / f"{i}.{'jpg' if mode == 'L' else 'png'}")
