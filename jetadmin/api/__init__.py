"""The API base shared by every app: errors, pagination, parsers, permission plumbing."""
