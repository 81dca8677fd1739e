"""Zero-cost proxies: a score of an untrained network (random init, random data) that ranks
architectures roughly as their trained accuracy would, in a fraction of a second each.

- ``naswot`` (Mellor et al., ICML 2021, "NAS without training"): log-determinant of the
  Hamming-similarity kernel of the binary activation codes of a mini-batch;
- ``synflow`` (Tanaka et al., NeurIPS 2020; as a NAS proxy: Abdelfattah et al., ICLR 2021):
  log of the sum of |theta * dR/dtheta| with R the output sum of the network with |weights|
  on an all-ones input, in float64;
- ``snip`` (Lee et al., ICLR 2019; Abdelfattah et al.): sum of |theta * dL/dtheta| of the
  cross-entropy on random data and labels.

Their rank correlation with trained NAS-Bench-201 CIFAR-10 accuracy is measured by
``benchmarks/optimize.py`` (see the README). They work on any torch module
(:meth:`ZeroCostProxy.score_module`), so they cover FBNet, OFA and a user's own models.
"""

from __future__ import annotations

import math

import numpy as np

from edgeperf.errors import InvalidParameterError
from edgeperf.optimize.objectives import register
from edgeperf.optimize.objectives._base import Objective

#: Mini-batch of random images per scored network (NASWOT's paper uses 128; 16 keeps CPU cost low).
DEFAULT_BATCH = 16


class ZeroCostProxy(Objective):
    """Base of the proxies: scores each architecture's randomly initialised torch module.

    Parameters
    ----------
    batch_size : random images per network (synflow always uses one all-ones image).
    seed : seeds the weights and the data, so a score is reproducible.
    """

    kind = "proxy"
    unit = "score"
    cheap = False

    def __init__(self, *, batch_size: int = DEFAULT_BATCH, seed: int = 0):
        if isinstance(batch_size, bool) or not isinstance(batch_size, int) or batch_size < 2:
            raise InvalidParameterError(f"expected batch_size >= 2, got {batch_size!r}")
        self.batch_size = batch_size
        self.seed = seed
        self._memo: dict[tuple[str, str], float] = {}

    def _score(self, space, archs: list[str]) -> np.ndarray:
        import torch

        out = np.empty(len(archs))
        for i, arch in enumerate(archs):
            key = (space.name, arch)
            if key not in self._memo:
                torch.manual_seed(self.seed)
                module = space.build_module(arch)
                shape = space.input_shape(arch, batch_size=self.batch_size)
                self._memo[key] = self._score_own(module, shape)
            out[i] = self._memo[key]
        return out

    def score_module(self, module, input_shape: tuple[int, ...]) -> float:
        """The proxy of any torch ``module`` for inputs of ``input_shape`` (NCHW, N = batch).
        The module is copied first: proxies change weights, dtype and mode."""
        import copy

        return self._score_own(copy.deepcopy(module), input_shape)

    def _score_own(self, module, input_shape) -> float:
        import torch

        generator = torch.Generator().manual_seed(self.seed)
        with torch.enable_grad():
            return float(self._compute(module, tuple(input_shape), generator))

    def _compute(self, module, input_shape, generator) -> float:  # pragma: no cover - abstract
        raise NotImplementedError


_ACTIVATIONS = ("ReLU", "ReLU6", "Hardswish", "LeakyReLU", "GELU", "SiLU")


@register("naswot")
class NASWOT(ZeroCostProxy):
    """log |K| of the activation-pattern kernel (higher: inputs are told apart better)."""

    def _compute(self, module, input_shape, generator) -> float:
        import torch

        module = module.train()
        n = input_shape[0]
        kernel = torch.zeros(n, n, dtype=torch.float64)

        def hook(_mod, _inp, out):
            codes = (out.detach().reshape(n, -1) > 0).double()
            kernel.add_(codes @ codes.T + (1 - codes) @ (1 - codes).T)

        handles = [m.register_forward_hook(hook) for m in module.modules() if type(m).__name__ in _ACTIVATIONS]
        try:
            with torch.no_grad():
                module(torch.randn(input_shape, generator=generator))
        finally:
            for h in handles:
                h.remove()
        sign, logdet = torch.linalg.slogdet(kernel)
        return float(logdet) if float(sign) > 0 else float("-inf")


@register("synflow")
class SynFlow(ZeroCostProxy):
    """Synaptic flow of the network with |weights| (data-free, float64)."""

    def _compute(self, module, input_shape, generator) -> float:
        import torch

        module = module.double().eval()  # eval: BatchNorm is the affine map of its running stats
        with torch.no_grad():
            for p in module.parameters():
                p.abs_()
        module.zero_grad()
        out = module(torch.ones((1,) + input_shape[1:], dtype=torch.float64))
        out.sum().backward()
        with torch.no_grad():
            flow = float(sum((p * p.grad).abs().sum() for p in module.parameters() if p.grad is not None))
        # The flow grows geometrically with depth (1e30+ on FBNet): its log ranks the same.
        return math.log(flow) if flow > 0 else float("-inf")


@register("snip")
class SNIP(ZeroCostProxy):
    """Connection sensitivity |theta * dL/dtheta| summed over conv and linear weights."""

    def _compute(self, module, input_shape, generator) -> float:
        import torch

        module = module.train()
        module.zero_grad()
        x = torch.randn(input_shape, generator=generator)
        logits = module(x)
        labels = torch.randint(0, logits.shape[1], (input_shape[0],), generator=generator)
        torch.nn.functional.cross_entropy(logits, labels).backward()
        layers = (torch.nn.Conv2d, torch.nn.Linear)
        with torch.no_grad():
            return float(sum(
                (m.weight * m.weight.grad).abs().sum() for m in module.modules()
                if isinstance(m, layers) and m.weight.grad is not None
            ))
