"""The wire contract's pure rules: signing, exact-decimal JSON, money, quantity and text limits.

No I/O; shared by the dispatcher and the receiver kit; imports only ``.._exceptions``.
"""
