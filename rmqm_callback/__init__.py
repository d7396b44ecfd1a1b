"""RMQM for PyTorch Lightning and torchmetrics.

The Representation Manifold Quality Metric (van der Merwe, Newman & Barnard, 2022) measured with
no labels: a fixed probe set is altered in successively stronger steps, every level is embedded,
and the distances the representations travel give ``D``, ``D_RC``, ``P_RC`` and ``RMQM``.
"""

from rmqm_callback.alterations import PGD, Alteration, GaussianNoise, InputAlteration
from rmqm_callback.callback import RMQMCallback
from rmqm_callback.functional.rmqm import RMQMCollapseWarning
from rmqm_callback.metric import RMQM
from rmqm_callback.scoring import score
from rmqm_callback.spectral_metric import SpectralScores

#: The package version (``pyproject.toml`` reads it from here).
__version__ = "0.2.0"

__all__ = [
    "PGD",
    "RMQM",
    "Alteration",
    "GaussianNoise",
    "InputAlteration",
    "RMQMCallback",
    "RMQMCollapseWarning",
    "SpectralScores",
    "__version__",
    "score",
]
