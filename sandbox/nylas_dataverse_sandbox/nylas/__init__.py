"""A local stand-in for the Nylas v3 Email API: grants, messages, folders, faults and webhooks.

``NylasBackend`` holds the state (seeded from ``personas`` by ``seed``), ``create_app`` serves it with
Starlette, and ``WebhookSender`` delivers signed notifications.
"""
