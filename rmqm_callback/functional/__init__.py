"""Functional interface: plain functions of tensors, usable without Lightning."""

from rmqm_callback.functional.rmqm import RMQMCollapseWarning, rmqm

__all__ = ["RMQMCollapseWarning", "rmqm"]
