from __future__ import annotations

from gt_toolkit.convert import CONVERTERS, Target
from tests.helpers import DATA

OUTPUTS = DATA / "outputs"
CONSOLE = OUTPUTS / "console-job.manifest"
API = OUTPUTS / "api-job.manifest"


def test_registry_covers_every_target() -> None:
    assert set(CONVERTERS) == set(Target)
    assert {t.value for t in Target} >= {"augmented", "coco", "yolo", "voc", "from-coco"}
