"""Volcano job plugins (env, svc, ssh), each behind the `JobPlugin` interface (`plugins.base`), in a
registry like Volcano's own (`pkg/controllers/job/plugins`): `plugins.registry.build_plugins` turns a
job's `spec.plugins` into plugin objects, parsing their Go-flag-style arguments."""
