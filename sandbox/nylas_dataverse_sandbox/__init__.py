"""Local stand-ins for Nylas v3, Microsoft Entra ID and the Dataverse Web API."""
