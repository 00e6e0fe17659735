"""jobwarden: a kopf operator and validating webhook for distributed training jobs.

Layers, top to bottom (imports only point down; import-linter enforces it):

    cli, shell   kopf handlers, API calls, webhook server   (imperative shell)
    kinds        one pure module per job kind + the registry
    plugins      Volcano job plugins (env, svc, ssh) behind one interface
    core         pure building blocks: plans, field errors, conditions, timers
"""

__version__ = "0.1.0"
