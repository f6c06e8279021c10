"""EMR step 2: train, evaluate and write a model version from the canonical dataset.

    spark-submit train_model.py --use-case matchups --data URI --models URI --run-id ID
        [--params JSON] [--tuning auto|grid]

DATA is the dataset URI the convert step wrote to (this run's rows are read from
DATA/run=<run id>/). The version lands under MODELS/<use case>/versions/<version>/. The promotion
gate is not part of this step: the DAG and the CLI run it as a stage of its own. TUNING "auto" refits the forest
with the champion's tuned hyperparameters when they still apply, "grid" tunes them again (train.choose_tuning).
"""

from __future__ import annotations

import argparse
import json
import sys

from pronostico.core import storage
from pronostico.core.layout import run_data_uri, run_report_uri
from pronostico.core.usecases import get_use_case
from pronostico.pipeline.spark import step_session
from pronostico.pipeline.train import TrainConfig, train


def parse_args(argv: list[str]) -> argparse.Namespace:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--use-case", required=True)
    parser.add_argument("--data", required=True, help="the dataset URI the convert step wrote")
    parser.add_argument("--models", required=True, help="the models bucket URI")
    parser.add_argument("--run-id", required=True)
    parser.add_argument("--params", default="", help="JSON overrides of TrainConfig")
    parser.add_argument("--tuning", choices=("auto", "grid"), default="auto",
                        help="auto: refit with the champion's hyperparameters when they apply; grid: tune again")
    return parser.parse_args(argv)


def prospective_summary(evaluation: dict | None) -> dict | None:
    """The champion's evaluation on the rows newer than its data, in brief (None when nothing was serving)."""
    if evaluation is None:
        return None
    model = evaluation.get("model") or {}
    return {"model_version": evaluation["model_version"], "status": evaluation["status"],
            "rows": evaluation["rows"], "log_loss": model.get("log_loss")}


def main(argv: list[str]) -> int:
    args = parse_args(argv)
    use_case = get_use_case(args.use_case)
    data_uri, report_uri = run_data_uri(args.data, args.run_id), run_report_uri(args.data, args.run_id)
    report = storage.read_json(report_uri) if storage.exists(report_uri) else None
    with step_session(f"pronostico-train-{args.use_case}") as spark:
        result = train(spark, use_case, data_uri, args.models, args.run_id,
                       TrainConfig.from_json(args.params), report, args.tuning)
    summary = {"version": result.version, "uri": result.version_uri, "tuning": result.manifest["tuning"]["path"],
               "log_loss": result.metrics["model"]["log_loss"],
               "baselines": {k: v["log_loss"] for k, v in result.metrics["baselines"].items()},
               "prospective": prospective_summary(result.evaluation)}
    print(f"PRONOSTICO_RESULT {json.dumps(summary)}")
    return 0


if __name__ == "__main__":
    sys.exit(main(sys.argv[1:]))
