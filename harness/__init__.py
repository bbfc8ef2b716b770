"""Helpers shared by the tests and the benchmarks: S3 servers, proxies, probes and worker
processes. Not part of the installed package.
"""
