"""Which device to compute on: CUDA, then Apple's MPS, then the CPU.

One setting moves every chapter to an accelerator: pass ``preferred`` or set
the environment variable ``COURSE_DEVICE`` (``make test DEVICE=cuda`` does the
latter). ``"auto"`` or an empty value means "the best one available".
"""

from __future__ import annotations

import os

import torch

__all__ = ["ENV_VAR", "get_device", "describe_device"]

ENV_VAR = "COURSE_DEVICE"
_KNOWN = ("auto", "cuda", "mps", "cpu")


def _available(kind: str) -> bool:
    if kind == "cuda":
        return torch.cuda.is_available()
    if kind == "mps":
        return bool(getattr(torch.backends, "mps", None)) and torch.backends.mps.is_available()
    return kind == "cpu"


def get_device(preferred: str | torch.device | None = None) -> torch.device:
    """Return the device to use.

    Order of precedence: ``preferred`` argument, then ``$COURSE_DEVICE``, then
    auto-detection (cuda → mps → cpu). Asking for a device that is not present
    raises ``RuntimeError`` rather than silently falling back, so a GPU run
    never turns into a slow CPU run unnoticed.
    """
    source = "preferred"
    choice = preferred
    if choice is None:
        choice, source = os.environ.get(ENV_VAR, ""), f"${ENV_VAR}"
    choice = str(choice).strip().lower() or "auto"
    if choice == "auto":
        for kind in ("cuda", "mps"):
            if _available(kind):
                return torch.device(kind)
        return torch.device("cpu")
    kind = choice.split(":")[0]
    if kind not in _KNOWN:
        raise ValueError(
            f"{source} is {choice!r}; expected one of {', '.join(_KNOWN)} (optionally 'cuda:N')"
        )
    if not _available(kind):
        raise RuntimeError(
            f"{source} asks for {choice!r}, but this machine has no {kind.upper()} device "
            f"available to PyTorch {torch.__version__}. Use 'auto' or 'cpu'."
        )
    return torch.device(choice)


def describe_device(device: torch.device | None = None) -> str:
    """One line naming the device, e.g. ``'cuda: NVIDIA H100 80GB HBM3'`` or ``'cpu: 2 threads'``."""
    device = device or get_device()
    if device.type == "cuda":
        return f"cuda: {torch.cuda.get_device_name(device)}"
    if device.type == "mps":
        return "mps: Apple GPU"
    return f"cpu: {torch.get_num_threads()} threads"
