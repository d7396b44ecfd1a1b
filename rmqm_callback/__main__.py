"""``python -m rmqm_callback score ...``: the same as the ``rmqm`` console script."""

from rmqm_callback.checkpoints.cli import main

if __name__ == "__main__":
    main()
