"""Helpers shared by the tests and the benchmarks: S3 servers, proxies, probes and worker
processes. Not part of the installed package.

Real S3 servers to run s3cache against (Ceph RADOS Gateway, SeaweedFS), started and stopped
from a shell (``python -m harness.ceph start|stop|status``, ``python -m harness.seaweedfs ...``)
or from Python (``with harness.servers.server("ceph") as endpoint: ...``). Nothing is imported
here, so that ``python -m harness.<module>`` runs its module once.
"""
