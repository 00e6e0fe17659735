"""Volcano job plugins (env, svc, ssh), each behind the `JobPlugin` interface, in a registry like
Volcano's own (`pkg/controllers/job/plugins`)."""
