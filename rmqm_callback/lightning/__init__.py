"""Layer 5, the Lightning side: ``RMQMCallback`` and what only it uses (schedule, probe keeping, syncing, logging).

Imports the layers below and Lightning (both ``pytorch_lightning`` and ``lightning.pytorch``); never checkpoints.
"""

from rmqm_callback.lightning.callback import RMQMCallback

__all__ = ["RMQMCallback"]
