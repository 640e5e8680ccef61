"""Entry scripts that run inside SageMaker's framework containers, shipped with the wheel.

Each sub-folder is one script bundle: the builders pack it as ``sourcedir.tar.gz`` (see
:mod:`gt_toolkit.sagemaker.pytorch`) and the container runs it with nothing of gt_toolkit
installed. So a bundle imports only the standard library, its framework and its own sibling
files; the part the builders need too (argument parsing, the metric line, file names) lives in a
torch-free ``contract.py`` that both sides import.
"""
