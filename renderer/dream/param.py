"""Image parameterisations for feature visualisation: what the optimiser changes instead of pixels.

Optimising raw pixels toward a class gives high-frequency static that the network reads as the class
and a person does not. Two changes of variables (Olah et al., "Feature Visualization", Distill 2017)
make the same optimiser find images with natural statistics:

* **Fourier space, 1/f scaled**: the parameters are the image's 2-D spectrum, each frequency scaled by
  ``1 / max(f, 1/max(h, w)) ** decay``. Natural images have roughly this spectrum, so an equal step in
  every parameter moves low frequencies (shapes) as much as high ones (texture), instead of letting
  pixel noise win.
* **Decorrelated colour**: the three channels are the principal components of ImageNet's colour
  covariance (the matrix below is its square root), mapped to RGB and squashed by a sigmoid, so colours
  stay in gamut and move together as in photographs.

Shapes: :class:`FourierImage` holds parameters (1, 3, H, W//2+1, 2); :meth:`FourierImage.forward` gives
(1,3,H,W) RGB in [0,1]. Pure tensor code, no I/O.
"""

from __future__ import annotations

import torch
from torch import nn

#: Square root of ImageNet's RGB covariance, from its singular value decomposition (rows: R, G, B;
#: columns: principal components), normalised below so its largest column has unit norm.
COLOR_SQRT = torch.tensor([[0.26, 0.09, 0.02],
                           [0.27, 0.00, -0.05],
                           [0.27, -0.09, 0.03]])
COLOR_MIX = COLOR_SQRT / COLOR_SQRT.norm(dim=0).max()
#: Scale of the inverse FFT's output before the sigmoid (the parameters then start near grey).
_SPATIAL_SCALE = 4.0
#: Standard deviation of each decorrelated channel in photographs (before the sigmoid; measured on
#: the CC0 samples, chelsea 1.07/1.11/0.75 and coffee 2.53/2.03/1.46): ``contrast=1`` holds an image there.
NATURAL_STD = (1.6, 1.5, 1.0)


def spectrum_scale(height: int, width: int, decay: float = 1.0) -> torch.Tensor:
    """(H, W//2+1) factor per rfft2 frequency: ``sqrt(H*W) / max(f, 1/max(H,W)) ** decay`` (f in cycles/px)."""
    fy = torch.fft.fftfreq(height)[:, None]
    fx = torch.fft.rfftfreq(width)[None, :]
    freqs = (fx * fx + fy * fy).sqrt()
    return (height * width) ** 0.5 / freqs.clamp(min=1.0 / max(height, width)) ** decay


def _logit(x: torch.Tensor, eps: float = 1e-3) -> torch.Tensor:
    x = x.clamp(eps, 1 - eps)
    return torch.log(x / (1 - x))


class FourierImage(nn.Module):
    """A (1,3,H,W) image parameterised by its decorrelated, 1/f-scaled spectrum.

    Args:
        height, width: image size in pixels.
        decay: spectrum exponent (1 = 1/f, natural images; 0 = white, like pixels).
        contrast: None lets the optimiser raise the contrast without bound (lucid's way: a class logit
            then drives colours to saturation); a number holds each decorrelated channel's standard
            deviation at ``contrast * NATURAL_STD``, so only the image's content is optimised, not its
            contrast (in the spirit of magnitude-constrained optimisation, Fel et al. 2023).
        sd: standard deviation of the random initial spectrum (small: the start is near grey).
        generator: CPU generator for the initial spectrum (same seed, same start).
        device: where the parameters live.
    """

    def __init__(self, height: int, width: int, *, decay: float = 1.0, sd: float = 0.01,
                 contrast: float | None = None, generator: torch.Generator | None = None,
                 device: torch.device | str = "cpu"):
        super().__init__()
        self.height, self.width, self.decay, self.contrast = height, width, decay, contrast
        self.register_buffer("target_std", torch.tensor(NATURAL_STD, device=device).view(1, 3, 1, 1) * (contrast or 1.0),
                             persistent=False)
        self.register_buffer("scale", spectrum_scale(height, width, decay).to(device), persistent=False)
        self.register_buffer("color", COLOR_MIX.to(device), persistent=False)
        init = torch.randn(1, 3, height, width // 2 + 1, 2, generator=generator) * sd
        self.spectrum = nn.Parameter(init.to(device))

    def decorrelated(self) -> torch.Tensor:
        """(1,3,H,W) image in the decorrelated colour basis, before the sigmoid."""
        spectrum = torch.view_as_complex(self.spectrum) * self.scale
        x = torch.fft.irfft2(spectrum, s=(self.height, self.width), norm="backward") / _SPATIAL_SCALE
        if self.contrast is not None:
            mean = x.mean((2, 3), keepdim=True)
            x = mean + (x - mean) * (self.target_std / (x.std((2, 3), keepdim=True) + 1e-8))
        return x

    def forward(self) -> torch.Tensor:
        """The image, (1,3,H,W) RGB in [0,1]."""
        x = self.decorrelated()
        rgb = torch.einsum("rc,bchw->brhw", self.color, x)
        return torch.sigmoid(rgb)

    @torch.no_grad()
    def set_image(self, image: torch.Tensor) -> "FourierImage":
        """Set the parameters so that :meth:`forward` gives `image` (1,3,H,W) in [0,1] (resized by the
        caller to this size); values are clamped a little inside (0, 1) to keep the sigmoid invertible.
        Used to carry an optimised image to a larger size (octaves) or to start from a photo."""
        rgb = _logit(image.to(self.spectrum.device, torch.float32))
        x = torch.einsum("cr,brhw->bchw", torch.linalg.inv(self.color), rgb) * _SPATIAL_SCALE
        spectrum = torch.fft.rfft2(x, norm="backward") / self.scale
        self.spectrum.copy_(torch.view_as_real(spectrum))
        return self
