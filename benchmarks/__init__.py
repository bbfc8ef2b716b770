"""Benchmarks: s3cache against litellm's S3Cache, raw aiobotocore and boto3 on one S3 endpoint.

Run ``python -m benchmarks --help`` (or ``nox -s bench -- --quick``). Nothing in ``s3cache``
imports this package.
"""
