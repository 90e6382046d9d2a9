"""The HTTP engine every call uses: aiohttp transport, wire interface, SSRF guard, capped reads.

Imports the standard library, aiohttp, httpx and ``.._exceptions`` only; no other subpackage.
"""
