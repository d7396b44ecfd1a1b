"""Layer 4, the evaluation stream: probe -> alteration -> encoder -> distances -> metric, and offline ``score``.

Imports the layers below (functional, metrics, alterations); never Lightning's side or checkpoints.
"""

from rmqm_callback.evaluation.encoder import Encoder
from rmqm_callback.evaluation.probe import Probe, as_probe
from rmqm_callback.evaluation.scoring import score

__all__ = ["Encoder", "Probe", "as_probe", "score"]
