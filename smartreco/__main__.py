import sys

from smartreco.cli import main

sys.exit(main())
