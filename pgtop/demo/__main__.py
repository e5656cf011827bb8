"""`python -m pgtop.demo [NAME] [--headless | --auto]`: the same as `pgtop demo`."""

import sys

from pgtop.demo.command import main

sys.exit(main())
