"""The coordinator: what runs a job the API accepted, on its parties' own nodes.

``opening`` (consent of every party's node and ``createJob`` signed by the creator's node),
``jobrun`` (one job's life after submission, shared by every executor), ``service`` (the production
coordinator: claim, lease, per-job engine on the members' nodes), ``tasks`` (its Celery task and
worker), ``settings``. The coordinator never holds a member key.
"""
