"""The one retry rule of our Prefect tasks: retry I/O failures (network, disk), nothing else.

A validation error, a consent refusal or an MPC failure will not change on a second try;
an S3 hiccup or a full disk might.
"""

from __future__ import annotations

IO_RETRY = {"retries": 2, "retry_delay_seconds": [2, 10]}


def retry_on_io(task, task_run, state) -> bool:  # type: ignore[no-untyped-def]
    """Prefect ``retry_condition_fn``: True only when the task failed with an ``OSError``."""
    try:
        state.result()
    except OSError:
        return True
    except Exception:  # noqa: BLE001 - any other failure is final
        return False
    return False


SHARD_RETRY = {"retries": 2, "retry_delay_seconds": [5, 30]}


def retry_shard(task, task_run, state) -> bool:  # type: ignore[no-untyped-def]
    """A shard is retried when its services or the network failed (``ShardFailed.retryable``:
    unreachable, busy, draining, a party stopped mid-session) or on I/O errors; never for
    invalid input, a refused identity or a protocol error."""
    try:
        state.result()
    except OSError:
        return True
    except Exception as err:  # noqa: BLE001 - only the retryable kinds
        return bool(getattr(err, "retryable", False))
    return False
