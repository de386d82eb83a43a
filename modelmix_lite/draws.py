"""The one Beta sampler: λ ~ Beta(α, α) for image mixup (§2.1) and parameter mixup (Eq. 5).

Both mixups draw their interpolation weight from a symmetric Beta. It is drawn here, once, as
``X / (X + Y)`` with ``X, Y ~ Gamma(α, 1)`` (float64, one ``torch._standard_gamma`` call), because
torch has no generator-seeded Beta sampler. Draws happen on the generator's device, so a seeded
CPU generator reproduces them anywhere, and the result is copied to ``device`` without a host sync.
"""

from __future__ import annotations

import torch

from .errors import ConfigError

MIN_ALPHA: float = 0.05
"""Smallest α that :func:`sample_beta` accepts: below it both float64 Gamma draws can underflow to 0."""


def sample_beta(
    alpha: float,
    shape: tuple[int, ...],
    device: torch.device | str = "cpu",
    generator: torch.Generator | None = None,
) -> torch.Tensor:
    """Draws of ``Beta(α, α)`` as a float32 tensor of ``shape`` on ``device``, with no host sync.

    With ``generator=None`` the draw happens on ``device`` (its default RNG); otherwise on the
    generator's device, and the result is copied to ``device`` with ``non_blocking=True``.

    Raises:
        ConfigError: unless ``alpha >= MIN_ALPHA``.
    """
    if not alpha >= MIN_ALPHA:
        raise ConfigError(f"alpha: the Beta(α, α) parameter must be >= {MIN_ALPHA}, got {alpha!r}")
    where = generator.device if generator is not None else torch.device(device)
    concentration = torch.full((2, *shape), float(alpha), dtype=torch.float64, device=where)
    x, y = torch._standard_gamma(concentration, generator=generator)
    return (x / (x + y)).float().to(device, non_blocking=True)
