"""``python -m s3cache``: the same command line as the ``s3cache`` script."""

from s3cache.cli import main

raise SystemExit(main())
