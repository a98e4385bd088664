"""`python -m portal_client ...`: the `portal` command (portal_client/cli.py)."""

import sys

from portal_client.cli import main

sys.exit(main())
