"""What tenants store: config rules, stores (memory, SQL, cache), models, migrations, secrets, keys.

May import ``contract`` and ``http`` (the save-time SSRF check); never ``webhooks`` or above.
"""
