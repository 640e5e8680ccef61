"""Several workers' answers on one image become one label.

Geometry, the engine, polygons, worker quality, offline runs.
"""
