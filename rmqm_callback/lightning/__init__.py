"""Layer 5, the Lightning side: ``RMQMCallback``, what only it uses (schedule, syncing, logging), ``collapse_alarm``.

Imports the layers below and Lightning (both ``pytorch_lightning`` and ``lightning.pytorch``); never checkpoints.
"""

from rmqm_callback.lightning.callback import RMQMCallback
from rmqm_callback.lightning.collapse_alarm import CollapseStopping, collapse_alarm

__all__ = ["CollapseStopping", "RMQMCallback", "collapse_alarm"]
