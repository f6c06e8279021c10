"""pronostico: train Spark random forests on raw CSVs, serve them without a JVM."""

__version__ = "0.1.0"
