"""Typed adapters over side-effecting clients (boto3, HTTP, Docker).

Raw client payloads stay in here; everything else sees ``stages.types``.
"""
