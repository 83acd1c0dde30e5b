"""What the portfolio does after a domain event besides the webhook outbox
(``portfolio.webhooks.write_outbox``). Imported by ``PortfolioConfig.ready``."""

from __future__ import annotations

from django.db import transaction

from config.celery import enqueue
from portfolio import events, tasks


@events.subscribe(events.RECOMPUTE_REQUESTED)
def queue_recompute(event: events.Event) -> None:
    """Queue the recompute once the change commits.

    The use cases are flagged ``needs_recompute`` in that transaction, so a broker that
    cannot be reached costs a delay (the stale sweep picks them up), never the write.
    """
    use_case_ids = event.data["use_case_ids"]
    if event.data.get("sweep"):
        transaction.on_commit(lambda: enqueue(tasks.recompute_stale))
        return

    def queue() -> None:
        for use_case_id in use_case_ids:
            if not enqueue(tasks.recompute_use_case, use_case_id):
                return  # The broker is gone: the rest wait for the sweep too.

    transaction.on_commit(queue)
