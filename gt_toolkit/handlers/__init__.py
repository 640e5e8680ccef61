"""What the pre- and post-annotation Lambdas run.

The files in ``lambdas/`` are one-call adapters over these modules.
"""
