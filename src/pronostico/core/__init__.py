"""The core: use cases, features, the JVM-free forest, the registry and the storage layout.

It imports neither pyspark nor Flask, so every runtime can depend on it. Keep this file empty of imports:
the trigger Lambda bundles `config` alone and must not pull numpy in through the package.
"""
