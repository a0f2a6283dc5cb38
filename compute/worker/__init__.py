"""Party workers: one long-lived OS process per party running SecretFlow in production (SPMD) mode.

`secureflow.compute.worker.engine.Engine` (the coordinator side) starts the workers, keeps
them warm across jobs, restarts them after a failure and shuts them down.
`secureflow.compute.worker.main` is the worker process itself; `secureflow.compute.worker.context`
is what an algorithm sees inside a worker. Only `engine` and `protocol` are
imported by the coordinator; they never import SecretFlow.
"""
