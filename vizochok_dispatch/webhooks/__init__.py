"""The synchronous webhooks: dispatcher, delivery and retry, breaker and bulkhead, bodies, results.

Also test-fire and the deployment settings. May import ``tenants``, ``http`` and ``contract``.
"""
