"""Datasources: the connection configs of a tenant (the model comes with the datasource API)."""
