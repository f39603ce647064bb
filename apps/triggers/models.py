"""Workflow triggers: cron schedules and webhook tokens (filled in by the triggers work)."""
