"""``python -m veto_crm``: see veto_crm/cli.py."""

import sys

from .cli import main

sys.exit(main())
