"""``python -m logitkit`` (and ``torchrun -m logitkit run ...``) is the ``logitkit`` command."""

from logitkit.cli import main

if __name__ == "__main__":
    main()
