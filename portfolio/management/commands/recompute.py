"""Recompute cost, ROI and NPV in this process, through the same code the workers run."""

from django.core.management.base import BaseCommand, CommandError

from portfolio import services


class Command(BaseCommand):
    help = "Recompute use cases now: the stale ones by default, every one with --all, or the given ids."

    def add_arguments(self, parser):
        scope = parser.add_mutually_exclusive_group()
        scope.add_argument("--all", action="store_true", help="Recompute the whole portfolio as a tracked job.")
        scope.add_argument("--use-case", type=int, nargs="+", metavar="ID", help="Recompute these use cases.")
        parser.add_argument("--snapshot", action="store_true", help="With --all, store today's portfolio snapshot.")

    def handle(self, *args, all, use_case, snapshot, **options):
        if snapshot and not all:
            raise CommandError("--snapshot goes with --all.")
        if all:
            job = services.start_recompute_job(reason="recompute command", scope={"all": True, "snapshot": snapshot})
            job = services.run_recompute_job(job_id=job.pk, inline=True)
            self.stdout.write(
                f"Job {job.pk}: {job.done}/{job.total} use cases, {job.changed} changed, status {job.status}; "
                f"monthly cost {job.monthly_cost_before} → {job.monthly_cost_after} {job.currency}."
            )
            return
        if use_case:
            result = services.recompute_use_cases(use_case_ids=use_case, reason="recompute command")
        else:
            result = services.recompute_stale()
        self.stdout.write(f"Recomputed {result.use_cases} use cases, {len(result.changed)} changed.")
