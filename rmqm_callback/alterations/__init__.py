"""Layer 3, the alterations: successively stronger changes of the probe inputs (white noise, PGD, your own).

Imports only the functional core; an alteration sees the model through ``EncoderLike`` and probes as ``ProbeBatch``.
"""

from rmqm_callback.alterations.base import Alteration, EncoderLike, InputAlteration, ProbeBatch
from rmqm_callback.alterations.noise import GaussianNoise
from rmqm_callback.alterations.pgd import PGD, contrastive_loss

__all__ = ["PGD", "Alteration", "EncoderLike", "GaussianNoise", "InputAlteration", "ProbeBatch", "contrastive_loss"]
