"""How good are the labels and the model.

COCO-style AP, precision and recall, and review pictures.
"""
