"""The drivers around the core: the in-process job and runner, the Celery app and its tasks,
the enqueuer, and the Redis coordination the fleet shares."""
