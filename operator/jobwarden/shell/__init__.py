"""The imperative shell: kopf handlers, Kubernetes API calls, the webhook server, metrics."""
