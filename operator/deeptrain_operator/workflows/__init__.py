"""The Workflow controller: builders, status, reconcile and kopf handlers (register by importing .handlers)."""
