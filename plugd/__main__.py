"""`python -m plugd` runs the daemon, as the `plugd` script does."""

from plugd.cli import main

raise SystemExit(main())
