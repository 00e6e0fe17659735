"""Pure building blocks shared by every job kind. Never imports kopf or a Kubernetes client."""
