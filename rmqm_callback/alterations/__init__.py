"""Alterations: successively stronger changes of the probe inputs (white noise, PGD, your own)."""

from rmqm_callback.alterations.base import Alteration, InputAlteration
from rmqm_callback.alterations.noise import GaussianNoise
from rmqm_callback.alterations.pgd import PGD, contrastive_loss

__all__ = ["PGD", "Alteration", "GaussianNoise", "InputAlteration", "contrastive_loss"]
