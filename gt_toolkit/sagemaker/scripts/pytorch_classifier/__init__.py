"""Fine-tune a torchvision ResNet on class folders (``train.py``) and serve it (``inference.py``).

``contract.py`` is what the builder and the scripts share; read its docstring first.
"""
