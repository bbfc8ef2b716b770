"""Reliability and security tests: faults through a proxy, bad input, resources, concurrency."""
