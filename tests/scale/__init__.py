"""The several-hosts harness (``make test-scale``): see docs/deployment.md#several-hosts-proven.

Not collected by ``make test``: it needs root, network namespaces and a few minutes.
"""
