import sys

from ohlora.cli import main

sys.exit(main())
