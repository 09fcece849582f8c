import sys

from degen.cli import main

sys.exit(main())
