"""`python -m phnn`: the phnn command line."""

import sys

from phnn.cli import main

sys.exit(main())
