"""implementation_guide.md against what a clone has and what the code does (the rehearsal runs its commands)."""

from __future__ import annotations

import re

from pronostico.pipeline.steps import Step, emr_step
from tests.deploy.guide import GUIDE, guide_commands


def section(title: str) -> str:
    text = GUIDE.read_text(encoding="utf-8")
    return text.split(f"## {title}", 1)[1].split("\n## ", 1)[0]


def test_the_first_upload_uses_data_a_clone_makes() -> None:
    """A clone has no ../shared: the upload's file is one the guide's own commands write first."""
    upload = section("6. The first upload, and how to watch it")
    assert "../shared" not in GUIDE.read_text(encoding="utf-8")
    out = re.search(r"pronostico data synthetic --out (\S+)", upload)
    assert out, "the guide makes no data before the first upload"
    [copy] = [c for c in guide_commands() if c.key == "s3 cp" and "s3://$RAW/" in c.text]
    assert copy.text.split()[3].startswith(out.group(1) + "/")
    assert "Kaggle" in upload and "results.csv" in upload  # where the real data sets come from


def test_the_guide_sends_a_failed_step_to_the_driver_log_of_cluster_mode() -> None:
    """With --deploy-mode cluster the driver runs in YARN's first container, not in the step's stderr."""
    step = emr_step(Step("convert_csv_to_parquet", "convert_csv_to_parquet.py", []), "s3://code", "assets")
    args = step["HadoopJarStep"]["Args"]
    assert args[args.index("--deploy-mode") + 1] == "cluster"
    driver_log = "containers/application_<id>/container_<id>_01_000001/stderr.gz"
    assert driver_log in section("6. The first upload, and how to watch it")
    [row] = [line for line in section("9. Troubleshooting").splitlines() if line.startswith("| a step fails")]
    assert driver_log in row
