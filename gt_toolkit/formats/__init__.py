"""Ground Truth's shapes, parsed and built.

Manifests, labels, worker answers, label categories, samples and splits.
"""
