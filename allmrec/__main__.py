"""``python -m allmrec`` (also ``accelerate launch -m allmrec ...``)."""

import sys

from .cli import main

sys.exit(main())
