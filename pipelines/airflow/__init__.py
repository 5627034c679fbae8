"""Pipeline specs on Apache Airflow 3: a compiler to static DAG files and the operator they use.

:mod:`pipelines.airflow.compile` turns specs into DAG files without importing Airflow;
:mod:`pipelines.airflow.operator` (imported by those files, on Airflow workers) runs one step
of a spec with the local runner's step code and reports its lineage through the OpenLineage
provider.
"""
