"""The trigger Lambda: an upload to the raw bucket becomes a run of the `pronostico_retrain` DAG.

Deployed as `dist/lambda_trigger.zip` (`make lambda-zip`), handler `lambda_trigger.handler.handler`. It imports
only the standard library, `pronostico.core.config` (itself stdlib-only) and, on AWS, boto3 from the Lambda runtime.
Locally, `pronostico.local.stack.watcher` feeds it the same S3-shaped events.
"""
