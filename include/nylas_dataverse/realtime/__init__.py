"""The real-time path: Nylas webhooks in, the same transform and exactly-once load as the daily DAG out.

``receiver`` verifies and stores notifications, ``inbox`` is the durable queue in staging, ``trigger``
tells Airflow when notifications are waiting, and ``processor`` turns them into Dataverse rows by
running the pipeline's own task bodies.
"""
