import sys

from fusioncam.cli import main

sys.exit(main())
