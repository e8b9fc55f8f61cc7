"""Airflow glue for LIVI: thin operators that call the ``livi_tasks`` library.

Everything that does work lives in ``livi_tasks`` (which never imports Airflow); these modules only
turn Params into a configuration, call one library function, log its summary and hand small
JSON (keys, paths, counts) to the next task through XCom. Library modules are imported when a
task runs, never when a DAG file is parsed.
"""
