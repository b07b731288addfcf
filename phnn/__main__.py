import sys

from phnn.cli import main

sys.exit(main())
