"""Event webhooks: the event catalog, tenant endpoints, publishing, durable delivery, workers.

May import ``contract``, ``http`` and ``tenants``; never ``webhooks``, ``admin`` or ``receiver``.
"""
