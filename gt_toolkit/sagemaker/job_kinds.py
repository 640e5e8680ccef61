"""What kind of training job a request is: a built-in algorithm, a JumpStart model, or a script.

Debugger, tuning, deployment and pre-flight all decide by this, from the request alone (or a
job's description with its tags), so the rule lives here once.
"""

from __future__ import annotations

from collections.abc import Mapping
from typing import Any, Final, Literal

__all__ = ["JUMPSTART_MODEL_ID_TAG", "Algorithm", "JobKind", "algorithm_of", "job_kind"]

Algorithm = Literal["object-detection", "image-classification"]
JobKind = Literal["builtin", "jumpstart", "script"]
JUMPSTART_MODEL_ID_TAG: Final = "sagemaker-sdk:jumpstart-model-id"


def job_kind(request: Mapping[str, Any]) -> JobKind:
    """Built-in algorithm, JumpStart model, or script mode (a ``sagemaker_program`` of one's own).

    JumpStart requests carry the model-id tag the JumpStart builder sets (as the SageMaker SDK
    does); script mode has ``sagemaker_program``; anything else is taken for a built-in
    algorithm. Works on a request or on a job description with its tags added.
    """
    tags = request.get("Tags") or []
    if any(isinstance(t, Mapping) and t.get("Key") == JUMPSTART_MODEL_ID_TAG for t in tags):
        return "jumpstart"
    if "sagemaker_program" in (request.get("HyperParameters") or {}):
        return "script"
    return "builtin"


def algorithm_of(request: Mapping[str, Any]) -> Algorithm:
    """The built-in algorithm a CreateTrainingJob-shaped request trains, from its image URI."""
    image = str((request.get("AlgorithmSpecification") or {}).get("TrainingImage", ""))
    return "image-classification" if "image-classification" in image else "object-detection"
