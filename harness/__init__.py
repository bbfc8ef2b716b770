"""Helpers for the tests and the benchmarks (servers, proxies, probes); not part of s3cache."""
