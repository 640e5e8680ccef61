"""Test doubles that are part of the public toolkit.

A seeded crowd of simulated workers (as ``shapely.testing``).
"""
