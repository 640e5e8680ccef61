"""The built wheel carries the templates: install it into a fresh venv and render there.

Offline: the wheel is built with the hatchling already installed (no build isolation), the
venv gets no pip and no index; runtime dependencies come from this environment's
site-packages through a .pth line (which does not activate the checkout's editable install).
"""

from __future__ import annotations

import json
import os
import subprocess
import sys
import sysconfig
from pathlib import Path

import pytest

from tests.helpers import REPO

SCRIPT = """
import json, sys
import gt_toolkit
from gt_toolkit.templating import find_template_dir
html = gt_toolkit.render_bounding_box_template(
    ["ball"], "Box", "Short.", "Full.", [(sys.argv[1], "good")], [(sys.argv[1], "bad")])
import io, tarfile
from gt_toolkit.sagemaker.pytorch import SCRIPT_DIR, pack_pytorch_source
bundle = tarfile.open(fileobj=io.BytesIO(pack_pytorch_source()), mode="r:gz").getnames()
print(json.dumps({"module": gt_toolkit.__file__, "templates": str(find_template_dir()),
                  "version": gt_toolkit.__version__, "html": html,
                  "scripts": str(SCRIPT_DIR), "bundle": bundle}))
"""


@pytest.mark.slow
def test_wheel_installs_and_renders_outside_the_checkout(tmp_path: Path) -> None:
    dist = tmp_path / "dist"
    subprocess.run(
        [
            sys.executable,
            "-m",
            "pip",
            "wheel",
            "-q",
            "--no-deps",
            "--no-build-isolation",
            "--no-index",
            "-w",
            str(dist),
            str(REPO),
        ],
        check=True,
        capture_output=True,
        timeout=120,
    )
    [wheel] = dist.glob("gt_toolkit-*.whl")
    venv = tmp_path / "venv"
    subprocess.run([sys.executable, "-m", "venv", "--without-pip", str(venv)], check=True)
    python = venv / "bin" / "python"
    subprocess.run(
        [
            sys.executable,
            "-m",
            "pip",
            "--python",
            str(python),
            "install",
            "-q",
            "--no-deps",
            "--no-index",
            str(wheel),
        ],
        check=True,
        capture_output=True,
        timeout=120,
    )
    purelib = subprocess.run(
        [str(python), "-c", "import sysconfig; print(sysconfig.get_paths()['purelib'])"],
        check=True,
        capture_output=True,
        text=True,
    ).stdout.strip()
    Path(purelib, "gt_toolkit_test_deps.pth").write_text(sysconfig.get_paths()["purelib"] + "\n")

    work = tmp_path / "elsewhere"
    work.mkdir()
    env = {k: v for k, v in os.environ.items() if k not in ("PYTHONPATH", "PYTHONHOME")}
    example = REPO / "samples" / "examples" / "good_tight.jpg"
    result = subprocess.run(
        [str(python), "-c", SCRIPT, str(example)],
        cwd=work,
        env=env,
        check=True,
        capture_output=True,
        text=True,
        timeout=60,
    )
    info = json.loads(result.stdout)
    assert Path(info["module"]).is_relative_to(venv)
    assert Path(info["templates"]) == Path(purelib) / "gt_toolkit" / "templates"
    assert info["version"] == "0.1.0"
    # the PyTorch scripts ship in the wheel and pack as sourcedir.tar.gz from there
    assert Path(info["scripts"]).is_relative_to(Path(purelib) / "gt_toolkit")
    assert info["bundle"] == ["train.py", "inference.py", "contract.py", "image_io.py"]
    assert 'name="boundingBox"' in info["html"]
    assert info["html"].count("data:image/jpeg;base64,") == 4

    out = work / "t.liquid.html"
    cli = subprocess.run(
        [
            str(venv / "bin" / "gt-convert"),
            "template",
            "-o",
            str(out),
            "--labels",
            "ball",
            "--header",
            "Box",
            "--short-instructions",
            "S",
            "--full-instructions",
            "F",
            "--good",
            str(example),
            "g",
            "--bad",
            str(example),
            "b",
            "--preview",
            '{"source-ref": "s3://gt-toolkit-demo/images/img_000.jpg"}',
            "--images-dir",
            str(REPO / "samples" / "images"),
            "--offline",
        ],
        cwd=work,
        env=env,
        capture_output=True,
        text=True,
        timeout=60,
    )
    assert cli.returncode == 0, cli.stderr
    assert "crowd-shim" not in out.read_text()
    assert "gt-shim" in (work / "t.liquid.preview.html").read_text()
