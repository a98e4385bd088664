"""Entry point for ``python -m apps.training.engine``."""

import sys

from .cli import main

if __name__ == "__main__":  # guard: DDP's spawn re-imports the main module
    sys.exit(main())
