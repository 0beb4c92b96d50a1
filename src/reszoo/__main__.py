import sys

from reszoo.cli import main

sys.exit(main())
