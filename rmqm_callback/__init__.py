"""RMQM for PyTorch Lightning and torchmetrics.

The Representation Manifold Quality Metric (van der Merwe, Newman & Barnard, 2022) measured with
no labels: a fixed probe set is altered in successively stronger steps, every level is embedded,
and the distances the representations travel give ``D``, ``D_RC``, ``P_RC`` and ``RMQM``.

The package is built in layers, each a subpackage that imports only the ones before it:
``functional`` (plain functions), ``metrics`` (torchmetrics), ``alterations``, ``evaluation``
(the stream from probe to metric, offline ``score``), ``lightning`` (``RMQMCallback``) and
``checkpoints`` (scoring saved checkpoints, the ``rmqm`` command); ``keys`` names what is logged.
"""

import sys

from rmqm_callback._version import __version__
from rmqm_callback.alterations import PGD, Alteration, GaussianNoise, InputAlteration
from rmqm_callback.checkpoints import cli
from rmqm_callback.evaluation import encoder, probe, scoring
from rmqm_callback.evaluation.scoring import score
from rmqm_callback.functional.rmqm import RMQMCollapseWarning
from rmqm_callback.lightning import callback
from rmqm_callback.lightning.callback import RMQMCallback
from rmqm_callback.lightning.collapse_alarm import collapse_alarm
from rmqm_callback.metrics import rmqm as metric
from rmqm_callback.metrics import spectral as spectral_metric
from rmqm_callback.metrics.knn import KNNAccuracy
from rmqm_callback.metrics.rmqm import RMQM
from rmqm_callback.metrics.spectral import SpectralScores

# Module paths of 0.2.0 that moved into the layers stay importable (``rmqm_callback.callback.RMQMCallback``
# in a LightningCLI config, ``from rmqm_callback.metric import RMQM``).
for _name, _module in {
    "callback": callback,
    "cli": cli,
    "encoder": encoder,
    "metric": metric,
    "probe": probe,
    "scoring": scoring,
    "spectral_metric": spectral_metric,
}.items():
    sys.modules[f"{__name__}.{_name}"] = _module
del _name, _module

__all__ = [
    "PGD",
    "RMQM",
    "Alteration",
    "GaussianNoise",
    "InputAlteration",
    "KNNAccuracy",
    "RMQMCallback",
    "RMQMCollapseWarning",
    "SpectralScores",
    "__version__",
    "collapse_alarm",
    "score",
]
