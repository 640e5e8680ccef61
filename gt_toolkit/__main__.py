"""``python -m gt_toolkit`` runs ``gt-convert``."""

from .cli import main

raise SystemExit(main())
