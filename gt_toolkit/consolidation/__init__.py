"""Several workers' answers on one image become one label.

The rules: ``docs/consolidation.md``. ``engine`` runs them as phases (``clean``, ``clusters``,
``repeats``, ``votes``, ``fusion``) on ``geometry``; ``worker_model`` learns each worker's
skills over a job; ``polygons``, ``worker_quality`` and ``reconsolidate`` (offline runs)
build on the engine.
"""
