"""Write the samples' simulated crowd as other labeling tools export it (run from the repo root).

The five simulated workers of ``make_worker_answers.py`` (``gt_toolkit.testing.simulated_crowd``)
on the 40 sample images, expressed by ``gt_toolkit.testing.crowd_exports`` under
``samples/crowd/``:

- ``label-studio.json``: a Label Studio JSON export (one task per image, one annotation per
  worker, ``completed_by`` with the worker's e-mail, boxes in percent);
- ``cvat/<worker>.xml``: one "CVAT for images 1.1" export per consensus replica job, the
  worker as the job's assignee;
- ``coco-raters.json``: COCO with ``rater_list`` on images and ``rater_id`` on annotations.

``gt-convert consolidate samples/crowd/label-studio.json --from label-studio -o out.manifest``
consolidates them. Re-running rewrites the same bytes.
"""

from __future__ import annotations

import json
import shutil
from pathlib import Path
from typing import Any

from make_worker_answers import sample_crowd

from gt_toolkit.formats.crowd import CrowdImage
from gt_toolkit.testing import crowd_exports

HERE = Path(__file__).resolve().parent
OUT = HERE / "crowd"
NAMES = ("ana", "ben", "chen", "dara", "eli")  # people's names read better than worker ids


def main() -> None:
    labels, simulated = sample_crowd()
    refs = [json.loads(x)["source-ref"] for x in (HERE / "input.manifest").read_text().splitlines()]
    images = [
        CrowdImage(
            key=ref,
            image_size=sim.image_size,
            annotators=NAMES[: len(sim.worker_ids)],
            boxes=tuple(sim.answers),
        )
        for ref, sim in zip(refs, simulated, strict=True)
    ]
    if OUT.exists():
        shutil.rmtree(OUT)
    (OUT / "cvat").mkdir(parents=True)
    emails = [
        CrowdImage(
            key=i.key,
            image_size=i.image_size,
            annotators=tuple(f"{n}@example.com" for n in i.annotators),
            boxes=i.boxes,
        )
        for i in images
    ]
    tasks = crowd_exports.label_studio_export(emails)
    (OUT / "label-studio.json").write_text(_one_per_line(tasks) + "\n")
    for name, xml in crowd_exports.cvat_job_exports(images, labels=labels).items():
        (OUT / "cvat" / f"{name}.xml").write_text(xml)
    coco = crowd_exports.coco_with_raters(images)
    sections = (f'"{name}":{_one_per_line(items)}' for name, items in coco.items())
    (OUT / "coco-raters.json").write_text("{" + ",\n".join(sections) + "}\n")


def _one_per_line(items: list[Any]) -> str:
    """A JSON list with one compact item a line: small, readable and diffable."""
    return "[\n" + ",\n".join(json.dumps(i, separators=(",", ":")) for i in items) + "\n]"


if __name__ == "__main__":
    main()
