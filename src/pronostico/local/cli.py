"""The `pronostico` command line: run the pipeline, predict, list and roll back models, upload."""

from __future__ import annotations

import argparse
import json
import sys
from collections.abc import Sequence
from datetime import UTC, datetime
from pathlib import Path
from typing import Any

from pronostico.core import layout, storage
from pronostico.core.config import Settings, load_settings
from pronostico.core.usecases import USE_CASES
from pronostico.core.usecases.base import InputField, RequestError, UseCase
from pronostico.local.synthetic import DEMO_MATCHES

EXIT_USAGE = 2


def main(argv: Sequence[str] | None = None) -> int:
    parser = build_parser()
    args = parser.parse_args(argv)
    if not hasattr(args, "handler"):
        parser.print_help()
        return EXIT_USAGE
    try:
        return int(args.handler(args, load_settings()) or 0)
    except RequestError as error:
        print(f"error: {error.message}", file=sys.stderr)
        return EXIT_USAGE
    except (FileNotFoundError, LookupError, ValueError) as error:
        print(f"error: {error}", file=sys.stderr)
        return 1


def build_parser() -> argparse.ArgumentParser:
    parser = argparse.ArgumentParser(prog="pronostico", description=__doc__)
    commands = parser.add_subparsers(metavar="COMMAND")
    _pipeline_commands(commands)
    _predict_commands(commands)
    _model_commands(commands)
    _data_commands(commands)
    _orchestration_commands(commands)
    return parser


def _pipeline_commands(commands: Any) -> None:
    pipeline = commands.add_parser("pipeline", help="run the Spark pipeline locally").add_subparsers(metavar="ACTION")
    run = pipeline.add_parser("run", help="convert, then train, then promote, through spark-submit")
    run.add_argument("--use-case", required=True, choices=sorted(USE_CASES))
    run.add_argument("--input", action="append", required=True, metavar="PATH_OR_URI",
                     help="a raw CSV or a folder of them (path, file:// or s3://); repeat for more")
    run.add_argument("--run-id", help="default: cli-<UTC timestamp>")
    run.add_argument("--params", default="", help='JSON overrides of the training config, e.g. {"num_trees": 50}')
    run.add_argument("--retune", action="store_true",
                     help="run the hyperparameter grid again instead of refitting with the champion's")
    run.set_defaults(handler=cmd_pipeline_run)


def _predict_commands(commands: Any) -> None:
    predict = commands.add_parser("predict", help="predict from the current model").add_subparsers(metavar="USE_CASE")
    for name, use_case in USE_CASES.items():
        command = predict.add_parser(name, help=f"{' / '.join(use_case.classes)}, with their probabilities")
        for field in use_case.input_fields:
            _add_input(command, field)
        command.add_argument("--json", action="store_true", help="print the HTTP API's JSON object")
        command.set_defaults(handler=cmd_predict, use_case=name)


def _add_input(command: argparse.ArgumentParser, field: InputField) -> None:
    """One flag per input field, named after it (home_team: --home-team), as the API's JSON names it."""
    flag = "--" + field.name.replace("_", "-")
    if field.kind == "bool":
        command.add_argument(flag, dest=field.name, action="store_true", help=field.label)
    elif field.kind == "choice":
        command.add_argument(flag, dest=field.name, choices=field.choices, default=field.default,
                             required=field.required, help=field.label)
    else:
        command.add_argument(flag, dest=field.name, required=field.required, help=field.label)


def _model_commands(commands: Any) -> None:
    models = commands.add_parser("models", help="the model registry").add_subparsers(metavar="ACTION")
    listing = models.add_parser("list", help="versions, holdout metrics and which one is current")
    listing.add_argument("--use-case", choices=sorted(USE_CASES))
    listing.add_argument("--json", action="store_true")
    listing.set_defaults(handler=cmd_models_list)
    promote = models.add_parser("promote", help="run the promotion gate on a version")
    promote.add_argument("--use-case", required=True, choices=sorted(USE_CASES))
    promote.add_argument("--version", required=True)
    promote.set_defaults(handler=cmd_models_promote)
    rollback = models.add_parser("rollback", help="point current.json back at an older version")
    rollback.add_argument("--use-case", required=True, choices=sorted(USE_CASES))
    rollback.add_argument("--version", required=True)
    rollback.set_defaults(handler=cmd_models_rollback)
    reindex = models.add_parser("reindex", help="rebuild the index the models page reads from every version file")
    reindex.add_argument("--use-case", choices=sorted(USE_CASES), help="default: every use case")
    reindex.set_defaults(handler=cmd_models_reindex)
    prune = models.add_parser("prune", help="remove old versions that never served, keeping the newest ones")
    prune.add_argument("--use-case", choices=sorted(USE_CASES), help="default: every use case")
    prune.add_argument("--keep", type=int, help="versions to keep (default: PRONOSTICO_REGISTRY_KEEP_VERSIONS)")
    prune.add_argument("--dry-run", action="store_true", help="only name what would be removed")
    prune.set_defaults(handler=cmd_models_prune)


def _data_commands(commands: Any) -> None:
    data = commands.add_parser("data", help="demo data").add_subparsers(metavar="ACTION")
    synthetic = data.add_parser("synthetic", help="write the synthetic demo CSVs")
    synthetic.add_argument("--out", type=Path, required=True)
    synthetic.add_argument("--seed", type=int, default=42)
    synthetic.add_argument("--matches", type=int, default=DEMO_MATCHES)
    synthetic.set_defaults(handler=cmd_data_synthetic)
    upload = commands.add_parser("upload", help="put a CSV into the raw bucket (this starts a run)")
    upload.add_argument("file", type=Path)
    upload.add_argument("--use-case", required=True, choices=sorted(USE_CASES))
    upload.add_argument("--name", help="object name in the bucket (default: the file's name)")
    upload.set_defaults(handler=cmd_upload)


def _orchestration_commands(commands: Any) -> None:
    watch = commands.add_parser("watch", help="turn files landing in the local raw bucket into S3 events (foreground)")
    watch.set_defaults(handler=cmd_watch)
    trigger = commands.add_parser("trigger", help="start a pronostico_retrain DAG run through Airflow's REST API")
    trigger.add_argument("--use-case", required=True, choices=sorted(USE_CASES))
    trigger.add_argument("--key", help="re-drive the upload event of this raw-bucket key, e.g. assets/SPY.csv")
    trigger.add_argument("--params", default="", help="JSON overrides of the training config (not with --key)")
    trigger.add_argument("--force", action="store_true", help="train even if the serving model saw these inputs")
    trigger.add_argument("--retune", action="store_true",
                         help="run the hyperparameter grid again instead of refitting with the champion's")
    trigger.set_defaults(handler=cmd_trigger)


def cmd_watch(args: argparse.Namespace, settings: Settings) -> int:
    from pronostico.local.stack import watcher

    return watcher.main()


def cmd_trigger(args: argparse.Namespace, settings: Settings) -> int:
    from lambda_trigger.handler import airflow_client, handle_event

    if args.key:
        event = upload_event(settings, args.use_case, args.key)
        print(json.dumps(handle_event(event, settings.airflow), indent=2))
        return 0
    conf = {"use_case": args.use_case, "train_params": args.params, "force": args.force, "retune": args.retune}
    run_id = f"manual__cli-{datetime.now(UTC):%Y%m%dT%H%M%S%fZ}"
    airflow_client(settings.airflow).trigger_dag_run(settings.airflow.dag_id, run_id, conf, note="pronostico trigger")
    print(f"triggered {settings.airflow.dag_id} run {run_id} at {settings.airflow.url}")
    return 0


def upload_event(settings: Settings, use_case: str, key: str) -> dict[str, Any]:
    """The S3 notification an upload of this raw-bucket key sends, built from the object as it is now."""
    from pronostico.local.stack.watcher import s3_event

    if not key.startswith(f"{use_case}/"):
        raise ValueError(f"the key must be under {use_case}/, e.g. {use_case}/file.csv")
    info = storage.stat(raw_object_uri(settings, use_case, key.split("/", 1)[1]))
    bucket = storage.split_uri(settings.raw_uri)[0] or storage.local_path(settings.raw_uri).name
    return s3_event(bucket, [{"key": key, "size": info.size, "etag": info.etag, "mtime_ns": int(info.modified * 1e9)}])


def cmd_pipeline_run(args: argparse.Namespace, settings: Settings) -> int:
    from pronostico.pipeline.steps import StepFailed, run_locally
    from pronostico.pipeline.train import TrainConfig

    TrainConfig.from_json(args.params)  # a typo in --params fails here, not minutes later inside Spark
    run_id = args.run_id or f"cli-{datetime.now(UTC):%Y%m%dT%H%M%SZ}"
    inputs = [uri for given in args.input for uri in input_uris(given)]
    print(f"pipeline {args.use_case} run {run_id}: {len(inputs)} input(s)")
    try:
        outcome = run_locally(settings, args.use_case, inputs, run_id, args.params, retune=args.retune)
    except StepFailed as failure:
        print(f"{failure.step.name:<24} FAILED  {failure.reason}", file=sys.stderr)
        if failure.log_path:
            print(f"{'':<24} log: {failure.log_path}", file=sys.stderr)
        return 1
    total = sum(outcome["timings"].values())
    print(f"{'total':<24} {'':<4}{total:6.1f}s")
    return 0


def cmd_predict(args: argparse.Namespace, settings: Settings) -> int:
    from pronostico.core.serving import load_current

    use_case = USE_CASES[args.use_case]
    model = load_current(settings.models_uri, args.use_case)
    payload = {f.name: getattr(args, f.name) for f in use_case.input_fields if getattr(args, f.name) is not None}
    answer = model.predict(payload)
    print(json.dumps(answer, indent=2) if args.json else _describe_answer(use_case, answer))
    return 0


def _describe_answer(use_case: UseCase, answer: dict[str, Any]) -> str:
    bars = [f"  {name:<9} {p:6.1%}  {'#' * round(p * 40)}" for name, p in answer["probabilities"].items()]
    return "\n".join([f"{use_case.describe(answer)}  [model {answer['model_version']}]", *bars,
                      f"Most likely: {use_case.headline(answer)}"])


def cmd_models_list(args: argparse.Namespace, settings: Settings) -> int:
    from pronostico.core.registry import list_versions

    use_cases = [args.use_case] if args.use_case else sorted(USE_CASES)
    listing = {uc: list_versions(settings.models_uri, uc) for uc in use_cases}
    if args.json:
        print(json.dumps({uc: [{k: v[k] for k in ("version", "created_at", "current", "metrics")} for v in vs]
                          for uc, vs in listing.items()}, indent=2))
        return 0
    for use_case, versions in listing.items():
        print(f"{use_case}: {len(versions)} version(s)")
        for v in versions:
            print("  " + _describe_version(v))
    return 0


def _describe_version(v: dict[str, Any]) -> str:
    metrics = v["metrics"]
    model = metrics.get("model", {})
    baselines = ", ".join(f"{name} {b['log_loss']:.4f}" for name, b in metrics.get("baselines", {}).items())
    marker = "*" if v["current"] else " "
    return (f"{marker} {v['version']}  log loss {model.get('log_loss', float('nan')):.4f}  "
            f"accuracy {model.get('accuracy', float('nan')):.3f}  baselines: {baselines}")


def cmd_models_promote(args: argparse.Namespace, settings: Settings) -> int:
    from pronostico.core.registry import promote_candidate

    decision = promote_candidate(settings.models_uri, args.use_case, args.version)
    print(f"{'promoted' if decision.promoted else 'kept the champion'}: {decision.reason}")
    return 0 if decision.promoted else 1


def cmd_models_rollback(args: argparse.Namespace, settings: Settings) -> int:
    from pronostico.core.registry import rollback

    rollback(settings.models_uri, args.use_case, args.version)
    print(f"{args.use_case}: current.json now points at {args.version}")
    return 0


def cmd_models_reindex(args: argparse.Namespace, settings: Settings) -> int:
    from pronostico.core.registry import update_index

    for use_case in [args.use_case] if args.use_case else sorted(USE_CASES):
        index = update_index(settings.models_uri, use_case, rebuild=True)
        print(f"{use_case}: indexed {len(index['versions'])} version(s) and {len(index['evaluations'])} "
              f"evaluation(s)")
    return 0


def cmd_models_prune(args: argparse.Namespace, settings: Settings) -> int:
    from pronostico.core.registry import prune

    keep = settings.registry_keep_versions if args.keep is None else args.keep
    if keep < 1:
        raise ValueError("nothing to prune: PRONOSTICO_REGISTRY_KEEP_VERSIONS keeps every version; "
                         "pass --keep N (1 or more)")
    for use_case in [args.use_case] if args.use_case else sorted(USE_CASES):
        removed = prune(settings.models_uri, use_case, keep, dry_run=args.dry_run)
        verb = "would remove" if args.dry_run else "removed"
        print(f"{use_case}: {verb} {len(removed)} version(s){': ' if removed else ''}{', '.join(removed)}")
    return 0


def cmd_data_synthetic(args: argparse.Namespace, settings: Settings) -> int:
    from pronostico.local.synthetic import write_demo_data

    for path in write_demo_data(args.out, args.seed, args.matches):
        print(path)
    return 0


def cmd_upload(args: argparse.Namespace, settings: Settings) -> int:
    if not args.file.is_file():
        raise FileNotFoundError(f"no such file: {args.file}")
    uri = raw_object_uri(settings, args.use_case, args.name or args.file.name)
    storage.upload_file(args.file, uri)
    print(uri)
    return 0


def raw_object_uri(settings: Settings, use_case: str, name: str) -> str:
    return layout.raw_object(settings.raw_uri, use_case, name)


def input_uris(given: str) -> list[str]:
    """A raw CSV as a URI, or every *.csv in a folder, sorted; a path that is neither fails in one line."""
    uri = storage.to_uri(given)
    if storage.is_s3(uri):
        return [uri]
    path = storage.local_path(uri)
    if path.is_dir():
        found = sorted(path.glob("*.csv"))
        if not found:
            raise FileNotFoundError(f"no *.csv files in the folder: {path}")
        return [storage.to_uri(p) for p in found]
    if not path.is_file():
        raise FileNotFoundError(f"no such file or folder: {path}")
    return [uri]


if __name__ == "__main__":
    sys.exit(main())
