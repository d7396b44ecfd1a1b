r"""Layer 2, the metrics: ``RMQM``, ``SpectralScores`` and ``ScalarView`` as ``torchmetrics.Metric``\ s.

``ScalarView`` shows one of their quantities as a scalar metric, for torchmetrics' wrappers. Imports only
the functional core (``rmqm_callback.functional``) and the key names (``rmqm_callback.keys``).
"""

from rmqm_callback.metrics.rmqm import RMQM
from rmqm_callback.metrics.scalar_view import ScalarView
from rmqm_callback.metrics.spectral import SpectralScores

__all__ = ["RMQM", "ScalarView", "SpectralScores"]
