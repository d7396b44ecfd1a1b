"""Layer 1, the functional core: plain functions of tensors, usable without Lightning or torchmetrics.

Imports nothing else of the package.

``rmqm`` computes RMQM and its components from trajectories of representations; ``rankme`` and
``alpha_req`` are the label-free spectral scores RMQM is compared with (and which the callback
logs from the clean probe as collapse signals); ``knn_accuracy`` is the labelled reference (the
leave-one-out k-NN accuracy of a labelled probe).
"""

from rmqm_callback.functional.knn import knn_accuracy
from rmqm_callback.functional.rmqm import RMQMCollapseWarning, rmqm
from rmqm_callback.functional.spectral import alpha_req, rankme

__all__ = ["RMQMCollapseWarning", "alpha_req", "knn_accuracy", "rankme", "rmqm"]
