"""Definitions the control plane shares with the jobs it runs: the training config, the search space, the template
registry and each template's data contract, dataset formats, status enums, the warm pool's name.

Importable without torch and without Ray (tests/test_layering.py holds it to that): the API, the services and the
Ray jobs all read the same definitions, while only the jobs load the workload.
"""
