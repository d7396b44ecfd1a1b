r"""Layer 2, the metrics: ``RMQM``, ``SpectralScores``, ``KNNAccuracy`` as ``torchmetrics.Metric``\ s; float64 states.

``ScalarView`` shows one of their quantities as a scalar metric, for torchmetrics' wrappers. Imports only
the functional core (``rmqm_callback.functional``) and the key names (``rmqm_callback.keys``).
"""

from rmqm_callback.metrics.knn import KNNAccuracy
from rmqm_callback.metrics.rmqm import RMQM
from rmqm_callback.metrics.scalar_view import ScalarView
from rmqm_callback.metrics.spectral import SpectralScores

__all__ = ["RMQM", "KNNAccuracy", "ScalarView", "SpectralScores"]
