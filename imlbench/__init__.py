"""imlbench: train and evaluate image manipulation localizers on shared data, perturbations and metrics."""
from __future__ import annotations

__version__ = "0.1.0"

__all__ = ["__version__", "evaluate"]


def evaluate(*args, **kwargs):  # noqa: D103 - documented on the implementation
    from imlbench.benchmark.evaluate import evaluate as _evaluate

    return _evaluate(*args, **kwargs)


evaluate.__doc__ = "Evaluate methods on datasets; see :func:`imlbench.benchmark.evaluate.evaluate`."
