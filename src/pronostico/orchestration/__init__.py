"""What the Airflow DAG calls: planning a run, the EMR cluster request, staging code, promotion."""
