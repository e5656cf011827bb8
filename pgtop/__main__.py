"""`python -m pgtop`: the same as the `pgtop` command."""

import sys

from pgtop.cli import main

sys.exit(main())
