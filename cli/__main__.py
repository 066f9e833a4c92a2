"""`python -m mmflow.cli`: the same as the `mmflow` command."""

from mmflow.cli.main import main

raise SystemExit(main())
