"""What a result file records about how it was made: library versions, device, time.

Every file of results the course writes (training runs, pretrained checkpoints) carries
this record, so that a number can be traced to the code and hardware that produced it.
"""

from __future__ import annotations

import platform
import time

import torch

from course_lib import __version__
from course_lib.core.device import describe_device

__all__ = ["library_versions", "provenance"]


def library_versions() -> dict[str, str]:
    """Versions of Python and of the libraries that decide the numbers."""
    import numpy
    import scipy
    import tokenizers
    import transformers

    return {"course_lib": __version__, "python": platform.python_version(),
            "torch": torch.__version__, "transformers": transformers.__version__,
            "tokenizers": tokenizers.__version__, "numpy": numpy.__version__,
            "scipy": scipy.__version__}


def provenance(device: torch.device | str | None = None, **extra) -> dict:
    """``{"versions", "device", "platform", "finished", **extra}`` for a result file.

    ``device`` is described by :func:`course_lib.core.device.describe_device` (e.g.
    ``"cpu: 2 threads"``); ``finished`` is the local time now, ISO 8601.
    """
    return {"versions": library_versions(),
            "device": describe_device(torch.device(device) if device is not None else None),
            "platform": platform.platform(),
            "finished": time.strftime("%Y-%m-%dT%H:%M:%S%z"), **extra}
