r"""Layer 2, the metrics: ``RMQM`` and ``SpectralScores`` as ``torchmetrics.Metric``\ s, and their float64 state rule.

Imports only the functional core (``rmqm_callback.functional``) and the key names (``rmqm_callback.keys``).
"""

from rmqm_callback.metrics.rmqm import RMQM
from rmqm_callback.metrics.spectral import SpectralScores

__all__ = ["RMQM", "SpectralScores"]
