"""EMR step 1: validate raw CSVs and write the use case's canonical dataset as parquet.

    spark-submit convert_csv_to_parquet.py --use-case matchups --input URI [--input URI ...]
        --output URI --quarantine URI --run-id ID [--max-bad-fraction 0.05]

Exit code 0: the dataset is written under OUTPUT/run=<run id>/ (bad rows, if any, are in
QUARANTINE/<run id>/). Exit code 1: a file was unusable as a whole; it is quarantined and the
last line on stderr says why.
"""

from __future__ import annotations

import argparse
import json
import sys

from pronostico.core.usecases import get_use_case
from pronostico.pipeline.convert import DEFAULT_MAX_BAD_FRACTION, FileRejected, convert
from pronostico.pipeline.spark import step_session


def parse_args(argv: list[str]) -> argparse.Namespace:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--use-case", required=True)
    parser.add_argument("--input", action="append", required=True, help="a raw CSV URI; repeat for more")
    parser.add_argument("--output", required=True, help="the dataset URI, e.g. .../processed/matchups/matches")
    parser.add_argument("--quarantine", required=True, help="e.g. .../processed/quarantine/matchups")
    parser.add_argument("--run-id", required=True)
    parser.add_argument("--max-bad-fraction", type=float, default=DEFAULT_MAX_BAD_FRACTION)
    return parser.parse_args(argv)


def main(argv: list[str]) -> int:
    args = parse_args(argv)
    with step_session(f"pronostico-convert-{args.use_case}") as spark:
        try:
            report = convert(spark, get_use_case(args.use_case), args.input, args.output, args.quarantine,
                             args.run_id, args.max_bad_fraction)
        except FileRejected as rejection:
            print(f"REJECTED: {rejection}", file=sys.stderr)
            return 1
    summary = {"rows_read": report.rows_read, "rows_kept": report.rows_kept,
               "rows_quarantined": report.rows_quarantined, "output": report.output_uri}
    print(f"PRONOSTICO_RESULT {json.dumps(summary)}")
    return 0


if __name__ == "__main__":
    sys.exit(main(sys.argv[1:]))
