"""Stand-in for Microsoft Entra ID: OIDC discovery and the client-credentials token endpoint."""
