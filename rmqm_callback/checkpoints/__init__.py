"""Layer 6, checkpoint scoring: saved checkpoints evaluated as the callback evaluated them, and the ``rmqm`` command.

Imports every layer below; nothing in the package imports it (``rmqm_callback.__main__`` runs its command).
"""

from rmqm_callback.checkpoints.scoring import (
    RESULT_KEYS,
    callback_states,
    find_checkpoints,
    load_probe,
    ranked,
    recorded_settings,
    score_checkpoint,
)

__all__ = [
    "RESULT_KEYS",
    "callback_states",
    "find_checkpoints",
    "load_probe",
    "ranked",
    "recorded_settings",
    "score_checkpoint",
]
