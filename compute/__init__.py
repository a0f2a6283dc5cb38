"""SecretFlow jobs: party workers, the algorithm registry and the job runner.

`compute` records steps through the ledger's small recording interface and never imports web3
(nor SecretFlow in the coordinator: only the party worker processes load it).

Public API (for the CLI, the API service and the demo)::

    from secureflow.compute.worker.engine import Engine          # one warm worker process per party
    from secureflow.compute.runner import run_job, JobResult     # validate, run, sign and record a manifest
    from secureflow.compute.manifest import JobManifest          # the job manifest (pydantic)
    from secureflow.compute.registry import describe_algorithms  # `secureflow algorithms --json`

    with Engine(["alice", "bob"], root) as engine:    # starts and, on exit, stops the workers
        manifest = {..., "parties": [{"name": p, "address": engine.addresses[p]} ...]}
        result = run_job(engine, manifest, recorder)  # recorder: secureflow.ledger.recorder.LedgerRecorder

Each party's files live under ``root/<party>/``: ``data/`` (its datasets, referenced
by relative path in manifests, and the outputs a step saves), ``models/``,
``secrets/`` (salt and member key), ``tmp/``, ``logs/worker.log``.
"""
