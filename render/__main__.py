"""`python -m render` is `sefa-render`."""

from render.cli import main

raise SystemExit(main())
