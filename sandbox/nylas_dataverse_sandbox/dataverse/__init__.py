"""Local stand-in for the Dataverse Web API (v9.2)."""
