"""The permission catalog (RuoYi-style strings) and the built-in roles.

Every API route names one of these; `require()` refuses unknown names at import time, so a typo cannot leave a
route open.
"""

from __future__ import annotations

PERMISSIONS: dict[str, str] = {
    "account:self": "See and change one's own account: password, API tokens, logout",
    "dataset:list": "List datasets",
    "dataset:query": "Read a dataset, its versions, profiles and reports",
    "dataset:add": "Create datasets",
    "dataset:upload": "Upload dataset versions",
    "dataset:edit": "Edit datasets and feature configuration",
    "dataset:remove": "Delete datasets and versions",
    "dataset:share": "Share datasets with other users",
    "dataset:quality": "Run quality checks",
    "dataset:process": "Run preprocessing pipelines",
    "training:job:list": "List training jobs",
    "training:job:query": "Read a job, its metrics and logs",
    "training:job:create": "Create and start training jobs from the built-in templates",
    "training:code:run": "Upload and run custom training code on the cluster's workers (see SECURITY.md)",
    "training:job:stop": "Stop training jobs",
    "training:job:retry": "Retry training jobs",
    "training:job:remove": "Delete training jobs",
    "training:tune:list": "List tuning runs",
    "training:tune:query": "Read a tuning run and its trials",
    "training:tune:create": "Start tuning runs",
    "training:tune:stop": "Stop tuning runs",
    "model:list": "List models",
    "model:query": "Read models and versions",
    "model:edit": "Edit models (stage, description)",
    "model:remove": "Delete models",
    "model:share": "Share models with other users",
    "model:deploy": "Deploy model versions",
    "deployment:list": "List deployments",
    "deployment:query": "Read a deployment",
    "deployment:predict": "Call a deployment's predict",
    "deployment:remove": "Delete deployments",
    "resource:node:list": "List compute nodes",
    "resource:node:add": "Register compute nodes",
    "resource:node:edit": "Edit compute nodes",
    "resource:node:remove": "Remove compute nodes",
    "resource:monitor:list": "Read resource usage and alerts",
    "system:user:list": "List users",
    "system:user:add": "Create users",
    "system:user:edit": "Edit, disable users and reset passwords",
    "system:role:list": "List roles",
    "system:role:edit": "Create, edit and delete roles",
    "system:audit:list": "Read the audit log",
    "system:config:list": "Read system settings",
    "system:config:edit": "Edit system settings",
}

ALL = "*"
CODE_RUN = "training:code:run"

_READ_ONLY = sorted(p for p in PERMISSIONS if p.endswith((":list", ":query")) and not p.startswith("system:"))

# Running one's own code is granted to admins only by default (it runs on the cluster with the platform's OS user:
# SECURITY.md); an admin grants CODE_RUN to a role they trust. Built-in roles follow this at every start.
BUILTIN_ROLES: dict[str, list[str]] = {
    "admin": [ALL],
    "developer": sorted(
        p
        for p in PERMISSIONS
        if not p.startswith("system:")
        and p not in {"resource:node:add", "resource:node:edit", "resource:node:remove", CODE_RUN}
    ),
    "viewer": ["account:self", *_READ_ONLY],
}


def check_known(permission: str) -> str:
    if permission != ALL and permission not in PERMISSIONS:
        raise ValueError(f"Unknown permission {permission!r}; known: {', '.join(sorted(PERMISSIONS))}.")
    return permission
