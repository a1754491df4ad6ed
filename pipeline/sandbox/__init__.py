"""The sandbox: moto's server on loopback, made to roll out ECS services as ECS does.

- `pipeline.sandbox.emulation`: wraps moto's ECS backend so that deployments start tasks,
  resolve image digests, progress, complete, fail and roll back, and does the same for
  CloudFormation and CodeDeploy (`install()`); a package, one module per emulated service.
- `pipeline.sandbox.seed`: creates the registry, clusters, task definitions and services
  that an envs.yaml describes (`seed()`, `push_commit_images()`).
- `pipeline.sandbox.server`: runs the server with the emulation in one process
  (`python -m tierup.pipeline.sandbox.server --port N`, `start_background()`, `stop_background()`).

Nothing here is imported eagerly: moto is only needed when the sandbox is used.
"""

from __future__ import annotations
