"""``python -m gt_toolkit`` runs ``gt-convert``."""

from gt_toolkit.cli import main

raise SystemExit(main())
