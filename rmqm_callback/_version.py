"""The package version, in a module that imports nothing (``pyproject.toml`` and the ``rmqm`` command read it)."""

__version__ = "0.2.0"
