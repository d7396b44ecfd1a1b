"""The tests mirror the package's layers (one folder a layer); the shared helpers beside this file.

pytest puts this folder on ``sys.path`` (rootdir conftest, ``prepend`` import mode), so every test imports
``reference_impl``, ``rmqm_asserts``, ``lightning_helpers``... by name.
"""
