"""The pipeline: the Spark jobs (convert, train) and the one list of steps a run executes.

Only `spark` and the jobs it serves import pyspark, and only inside functions, so `steps` runs on the Airflow
host without a JVM.
"""
