"""The conversation worker (queue trigger) and its recovery sweep (timer)."""

from __future__ import annotations

import azure.functions as func

from bot.conversation.sweeper import GRACE_MS
from bot.runtime import get_runtime
from core import events
from core.errors import SettingsError
from core.handoff import HANDOFF_QUEUE
from core.storage.idle import conversation_sweep_due
from core.telemetry import mask_phone

bp = func.Blueprint()
_started = False


# One message per conversation key with pending inbox rows. host.json `extensions.queues` sets the
# polling interval, batch size and dequeue limits. The body never raises, so nothing goes to poison.
@bp.queue_trigger(arg_name="msg", queue_name=HANDOFF_QUEUE, connection="AzureWebJobsStorage")
async def conversation_worker(msg: func.QueueMessage) -> None:
    await handle_queue_message(msg)


async def handle_queue_message(msg: func.QueueMessage) -> None:
    """The trigger's body, callable without Azure (the local host's queue and the tests use it).

    Never raises: a failure to even build the runtime (a setting missing or malformed, a database
    adapter that cannot be built) is logged and counted, and the message is acknowledged, because
    retrying it cannot help and its inbox rows stay pending for the sweep.
    """
    key = msg.get_body().decode("utf-8", "replace").strip()
    try:
        rt = get_runtime()
    except SettingsError as exc:
        events.worker_unavailable(mask_phone(key), "configuracion", str(exc))
        return
    except Exception as exc:
        events.worker_unavailable(mask_phone(key), "arranque", f"{type(exc).__name__}: {exc}", exc)
        return
    try:
        await rt.worker.work(key, enqueued_at=getattr(msg, "insertion_time", None),
                                dequeue_count=getattr(msg, "dequeue_count", None) or 1)
    except Exception as exc:  # work catches its own; this is the last guard before poison
        events.worker_unavailable(mask_phone(key), "inesperado", f"{type(exc).__name__}: {exc}", exc)


# Hand stalled conversations to the worker, expire idle sessions. The schedule is an app setting: every
# 15 s locally, every 5 minutes on Azure (infra/), where the queue rarely loses a key and an idle app must be
# able to scale to zero. No runOnStartup: on Azure it would run at every scale-out; the first run after a
# start uses no grace period instead.
@bp.timer_trigger(schedule="%CONVERSATION_SWEEP_SCHEDULE%", arg_name="timer", run_on_startup=False,
                  use_monitor=False)
async def conversation_sweep(timer: func.TimerRequest) -> None:
    global _started
    rt = get_runtime()
    now = rt.clock()
    # After the first run, an idle database costs one read per run (core/storage/idle.py).
    if _started and not await conversation_sweep_due(rt.db, now, now - rt.settings.session_idle_minutes * 60_000):
        return
    await rt.sweeper.sweep(grace_ms=GRACE_MS if _started else 0)
    _started = True
