"""Process plumbing: memory settings, secret redaction in logs."""
