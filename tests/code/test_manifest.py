"""The version manifest: what training writes beside the model, read by the registry and the pages."""

from __future__ import annotations

import pandas as pd

from pronostico.core.usecases import get_use_case
from pronostico.pipeline.train import TrainConfig, build_manifest


def test_the_manifest_names_the_dag_run_once() -> None:
    rows = pd.DataFrame({"date": ["2024-01-01", "2024-01-02", "2024-01-03", "2024-01-04"], "mirror": [0, 0, 0, 0]})
    fit = {"chosen": {"num_trees": 60, "max_depth": 6, "min_instances_per_node": 10}, "tried": [],
           "calibration": {"method": "none", "temperature": 1.0}}
    manifest = build_manifest(get_use_case("matchups"), "20240105T000000Z-abcdef", "manual__2024-01-05", rows,
                              "2024-01-03", fit, TrainConfig(), None, {"as_of": "2024-01-04", "teams": {}})
    assert manifest["run_id"] == "manual__2024-01-05"
    assert [key for key in manifest if "run" in key] == ["run_id"]
