"""What the pre- and post-annotation Lambdas run; the files in ``lambdas/`` are one-call.

Dapters over these.
"""
