"""AWS Lambda entry points: thin adapters over ``gt_toolkit`` (one call each)."""
