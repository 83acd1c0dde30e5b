"""Load a demo portfolio: three teams, four users and about thirty use cases."""

import datetime
import random
from decimal import Decimal

from django.contrib.auth import get_user_model
from django.contrib.auth.models import Group
from django.core.management.base import BaseCommand
from django.db import transaction
from django.utils import timezone

from portfolio import governance, services
from portfolio.models import (
    MANAGERS_GROUP,
    ChecklistItem,
    ChecklistTemplate,
    Deployment,
    Membership,
    PortfolioSnapshot,
    ProofOfConcept,
    Team,
    UseCase,
)
from pricing import costing
from pricing.models import LanguageModel, SelfHostingProfile

TEAMS = [("support", "Customer Support"), ("research", "Research & Development"), ("legal", "Legal")]

# username, first name, team slug, role; None as team: portfolio manager or superuser.
USERS = [
    ("alice", "Alice", "support", Membership.Role.MEMBER),
    ("bob", "Bob", "research", Membership.Role.MEMBER),
    ("dave", "Dave", "support", Membership.Role.LEAD),
    ("erin", "Erin", "legal", Membership.Role.LEAD),
    ("carol", "Carol", None, None),
]

# team, title, category, stage, risk tier, data classification, currency,
# hours saved, hourly rate, other benefit, one-time cost, monthly fixed, MAU
USE_CASES = [
    (
        "support",
        "FAQ chatbot",
        "customer_support",
        "production",
        "limited",
        "internal",
        "USD",
        900,
        45,
        0,
        60000,
        1500,
        200000,
    ),
    (
        "support",
        "Ticket triage and routing",
        "customer_support",
        "scaled",
        "limited",
        "personal",
        "USD",
        1400,
        40,
        2000,
        90000,
        2500,
        5000,
    ),
    (
        "support",
        "Reply drafting for agents",
        "content_generation",
        "pilot",
        "limited",
        "personal",
        "USD",
        600,
        40,
        0,
        30000,
        800,
        300,
    ),
    (
        "support",
        "Call summarisation",
        "customer_support",
        "poc",
        "minimal",
        "personal",
        "USD",
        300,
        38,
        0,
        15000,
        300,
        150,
    ),
    (
        "support",
        "Multilingual help centre",
        "content_generation",
        "idea",
        "unassessed",
        "public",
        "USD",
        120,
        45,
        500,
        20000,
        200,
        1000000,
    ),
    (
        "support",
        "Sentiment dashboard",
        "data_analysis",
        "retired",
        "minimal",
        "internal",
        "USD",
        40,
        45,
        0,
        12000,
        100,
        50,
    ),
    (
        "support",
        "Voice-of-customer mining",
        "data_analysis",
        "poc",
        "minimal",
        "confidential",
        "USD",
        160,
        55,
        0,
        25000,
        400,
        40,
    ),
    (
        "support",
        "Refund fraud hints",
        "process_automation",
        "pilot",
        "high",
        "personal",
        "USD",
        200,
        60,
        8000,
        70000,
        1200,
        80,
    ),
    (
        "support",
        "Knowledge-base gap finder",
        "document_search",
        "production",
        "minimal",
        "internal",
        "USD",
        250,
        45,
        0,
        18000,
        300,
        200,
    ),
    (
        "support",
        "Chat escalation predictor",
        "data_analysis",
        "idea",
        "unassessed",
        "personal",
        "USD",
        80,
        45,
        0,
        10000,
        100,
        0,
    ),
    (
        "research",
        "Code review assistant",
        "coding_assistant",
        "production",
        "minimal",
        "confidential",
        "USD",
        1200,
        85,
        0,
        80000,
        3000,
        400,
    ),
    (
        "research",
        "Internal coding copilot on Llama",
        "coding_assistant",
        "pilot",
        "minimal",
        "confidential",
        "USD",
        2000,
        85,
        0,
        150000,
        2000,
        900,
    ),
    (
        "research",
        "Patent prior-art search",
        "document_search",
        "poc",
        "limited",
        "confidential",
        "USD",
        300,
        110,
        0,
        40000,
        600,
        30,
    ),
    (
        "research",
        "Test generation bot",
        "coding_assistant",
        "production",
        "minimal",
        "internal",
        "USD",
        700,
        85,
        0,
        35000,
        700,
        350,
    ),
    (
        "research",
        "Lab notebook summariser",
        "document_search",
        "idea",
        "unassessed",
        "confidential",
        "USD",
        90,
        95,
        0,
        15000,
        200,
        60,
    ),
    (
        "research",
        "Research paper Q&A",
        "document_search",
        "scaled",
        "minimal",
        "public",
        "USD",
        500,
        95,
        0,
        45000,
        900,
        700,
    ),
    (
        "research",
        "Synthetic data generator",
        "data_analysis",
        "poc",
        "limited",
        "internal",
        "USD",
        150,
        85,
        3000,
        30000,
        500,
        20,
    ),
    (
        "research",
        "Incident post-mortem writer",
        "content_generation",
        "pilot",
        "minimal",
        "internal",
        "USD",
        110,
        85,
        0,
        12000,
        250,
        120,
    ),
    (
        "research",
        "Reasoning benchmark on DeepSeek R1",
        "data_analysis",
        "poc",
        "minimal",
        "internal",
        "USD",
        60,
        95,
        0,
        8000,
        100,
        10,
    ),
    (
        "research",
        "Legacy code migration",
        "coding_assistant",
        "retired",
        "minimal",
        "confidential",
        "USD",
        0,
        85,
        0,
        60000,
        0,
        0,
    ),
    (
        "legal",
        "Contract clause review",
        "document_search",
        "production",
        "high",
        "confidential",
        "JPY",
        500,
        9000,
        0,
        12000000,
        250000,
        120,
    ),
    (
        "legal",
        "NDA triage",
        "document_search",
        "scaled",
        "limited",
        "confidential",
        "JPY",
        700,
        8000,
        0,
        6000000,
        150000,
        200,
    ),
    (
        "legal",
        "Regulation watch digest",
        "content_generation",
        "pilot",
        "minimal",
        "public",
        "JPY",
        150,
        9000,
        0,
        3000000,
        60000,
        80,
    ),
    (
        "legal",
        "E-discovery first pass",
        "document_search",
        "poc",
        "high",
        "personal",
        "JPY",
        400,
        12000,
        0,
        9000000,
        200000,
        25,
    ),
    (
        "legal",
        "Translation of filings (JA-EN)",
        "content_generation",
        "production",
        "limited",
        "confidential",
        "JPY",
        300,
        10000,
        0,
        4000000,
        80000,
        60,
    ),
    (
        "legal",
        "Litigation outcome predictor",
        "data_analysis",
        "idea",
        "unacceptable",
        "personal",
        "JPY",
        100,
        15000,
        0,
        20000000,
        300000,
        15,
    ),
    (
        "legal",
        "Policy Q&A for employees",
        "customer_support",
        "pilot",
        "limited",
        "internal",
        "JPY",
        250,
        7000,
        0,
        5000000,
        100000,
        3000,
    ),
    (
        "legal",
        "Privacy request handler",
        "process_automation",
        "poc",
        "high",
        "personal",
        "JPY",
        180,
        8000,
        0,
        7000000,
        120000,
        40,
    ),
    (
        "legal",
        "Contract metadata extraction",
        "document_search",
        "retired",
        "minimal",
        "confidential",
        "JPY",
        60,
        8000,
        0,
        2000000,
        20000,
        10,
    ),
    (
        "legal",
        "Board minutes drafting",
        "content_generation",
        "idea",
        "unassessed",
        "confidential",
        "JPY",
        40,
        12000,
        0,
        1500000,
        30000,
        8,
    ),
]

COMMERCIAL = ["openai/gpt-4o", "openai/gpt-4o-mini", "anthropic/claude-sonnet-4.5", "google/gemini-2.5-flash"]
OPEN = ["meta/llama-3-70b", "deepseek/deepseek-r1", "mistral/mistral-large-3", "qwen/qwen2.5-72b", "meta/llama-3-405b"]
STAGE_DEPLOYMENT_STATUS = {
    "idea": None,
    "poc": Deployment.Status.PLANNED,
    "pilot": Deployment.Status.ACTIVE,
    "production": Deployment.Status.ACTIVE,
    "scaled": Deployment.Status.ACTIVE,
    "retired": Deployment.Status.STOPPED,
}
POC_STATUS = {
    "poc": ProofOfConcept.Status.RUNNING,
    "pilot": ProofOfConcept.Status.SUCCEEDED,
    "production": ProofOfConcept.Status.SUCCEEDED,
    "scaled": ProofOfConcept.Status.SUCCEEDED,
    "retired": ProofOfConcept.Status.FAILED,
}


class Command(BaseCommand):
    help = "Load demo teams, users and a realistic portfolio (idempotent: existing demo records are kept)."

    def add_arguments(self, parser):
        parser.add_argument("--password", default="demo1234", help="Password of every demo user (default: demo1234).")

    @transaction.atomic
    def handle(self, *args, password, **options):
        teams = {slug: Team.objects.get_or_create(slug=slug, defaults={"name": name})[0] for slug, name in TEAMS}
        users = self._users(teams, password)
        models = {model.key: model for model in LanguageModel.objects.all()}
        profiles = list(SelfHostingProfile.objects.order_by("pk"))
        rng = random.Random(2024)
        created = 0
        for number, row in enumerate(USE_CASES, start=1):
            team_slug, title, category, stage, risk, data, currency, hours, rate, other, one_time, fixed, mau = row
            team = teams[team_slug]
            external_id = f"demo-{number:03d}"
            if UseCase.objects.filter(team=team, external_id=external_id).exists():
                continue
            owner = next((u for u, (t, _) in users.items() if t == team_slug), None)
            # Production and beyond are reached through the governance gate, as in real life.
            gated = stage in UseCase.GATED_STAGES
            use_case = services.create_use_case(
                team=team,
                title=title,
                external_id=external_id,
                category=category,
                stage=UseCase.Stage.PILOT if gated else stage,
                risk_tier=risk,
                data_classification=data,
                currency=currency,
                owner=owner,
                description=f"{title}: demo use case of the {team.name} team.",
                hours_saved_per_month=Decimal(hours),
                hourly_rate=Decimal(rate),
                other_monthly_benefit=Decimal(other),
                one_time_cost=Decimal(one_time),
                monthly_fixed_cost=Decimal(fixed),
                horizon_months=36,
                expected_monthly_active_users=mau,
            )
            self._deployments(use_case, stage, models, profiles, rng, number)
            self._poc(use_case, stage, models, rng, number)
            if gated:
                self._pass_gate(use_case, stage, owner=owner, manager=next(u for u in users if u.username == "carol"))
            created += 1
        result = services.recompute_portfolio(reason="demo data loaded")
        governance.evaluate_checklists(use_case_ids=UseCase.objects.values_list("pk", flat=True))
        self._snapshot_history()
        self.stdout.write(
            self.style.SUCCESS(
                f"Demo ready: {len(teams)} teams, {len(users) + 1} users, {created} new use cases, "
                f"{result.use_cases} recomputed. Log in as alice, bob, carol or admin with password '{password}'."
            )
        )

    def _users(self, teams, password):
        User = get_user_model()
        managers = Group.objects.get(name=MANAGERS_GROUP)
        users = {}
        for username, first_name, team_slug, role in USERS:
            user, _ = User.objects.get_or_create(
                username=username, defaults={"first_name": first_name, "email": f"{username}@example.com"}
            )
            user.set_password(password)
            user.save()
            if team_slug is None:
                user.groups.add(managers)
            else:
                Membership.objects.get_or_create(user=user, team=teams[team_slug], defaults={"role": role})
            users[user] = (team_slug, role)
        admin, _ = User.objects.get_or_create(
            username="admin", defaults={"email": "admin@example.com", "is_staff": True, "is_superuser": True}
        )
        admin.set_password(password)
        admin.save()
        return users

    def _pass_gate(self, use_case, stage, *, owner, manager):
        """Evidence for the manual items, a manager's waiver for the rest, then the move through the gate."""
        governance.evaluate_checklists(use_case_ids=[use_case.pk])
        for item in (
            use_case.checklist_items.select_related("template")
            .filter(required=True)
            .exclude(status__in=ChecklistItem.CLEARED)
        ):
            if item.template.kind == ChecklistTemplate.Kind.MANUAL:
                governance.record_evidence(
                    item=item,
                    by=owner or manager,
                    status=ChecklistItem.Status.PASSED,
                    text=f"Demo evidence: {item.template.title}.",
                )
            else:
                governance.waive_item(
                    item=item,
                    by=manager,
                    reason="Demo data: accepted by the portfolio board while the remedy is under way.",
                )
        use_case.refresh_from_db()
        services.update_use_case(use_case=use_case, stage=stage)

    def _deployments(self, use_case, stage, models, profiles, rng, number):
        status = STAGE_DEPLOYMENT_STATUS[stage]
        if status is None:
            return
        requests = rng.choice([20_000, 50_000, 120_000, 300_000, 1_000_000])
        shape = {
            "requests_per_month": requests,
            "avg_input_tokens": rng.choice([600, 1000, 2500, 6000]),
            "avg_output_tokens": rng.choice([150, 300, 600]),
            "status": status,
        }
        if number % 4 == 0:
            # An open model on own hardware, beside a commercial fallback.
            services.create_deployment(
                use_case=use_case,
                name="Self-hosted",
                model=models[rng.choice(OPEN[:4])],
                hosting=Deployment.Hosting.SELF_HOSTED,
                environment=Deployment.Environment.ON_PREM,
                self_hosting_profile=profiles[number % len(profiles)],
                **shape,
            )
            shape["requests_per_month"] = requests // 10
        model_key = rng.choice(COMMERCIAL if number % 3 else OPEN)
        services.create_deployment(
            use_case=use_case,
            name="API",
            model=models[model_key],
            hosting=Deployment.Hosting.API,
            environment=Deployment.Environment.CLOUD,
            cached_input_ratio=Decimal(rng.choice(["0", "0.25", "0.5"])),
            data_processing_agreement=number % 2 == 0,
            **shape,
        )

    def _poc(self, use_case, stage, models, rng, number):
        status = POC_STATUS.get(stage)
        if status is None:
            return
        services.create_poc(
            use_case=use_case,
            hypothesis=f"{use_case.title} cuts handling time by a third.",
            success_criteria="At least 30% less handling time at equal quality on 200 sampled cases.",
            model=models[rng.choice(COMMERCIAL + OPEN)],
            status=status,
            kpi_name="Minutes per case",
            baseline_kpi=Decimal("12.0"),
            measured_kpi=None
            if status == ProofOfConcept.Status.RUNNING
            else Decimal(rng.choice(["7.5", "8.2", "11.6"])),
            cost=Decimal(rng.choice([5000, 12000, 25000])) * (150 if use_case.currency == "JPY" else 1),
        )

    def _snapshot_history(self, weeks=12):
        """Today's portfolio snapshot and one a week before it, growing towards today, for the trend chart.

        Past weeks are written once and kept; today's is taken again on every run.
        """
        today = timezone.localdate()
        now = services.take_portfolio_snapshot(on=today)
        for week in range(1, weeks + 1):
            # Benefit grows faster than cost as use cases leave their pilots.
            cost_share = Decimal(1) - Decimal("0.035") * week
            benefit_share = Decimal(1) - Decimal("0.055") * week
            PortfolioSnapshot.objects.get_or_create(
                taken_on=today - datetime.timedelta(weeks=week),
                defaults={
                    "currency": now.currency,
                    "use_cases": max(1, round(now.use_cases * (1 - 0.03 * week))),
                    "monthly_cost": costing.quantize_money(now.monthly_cost * cost_share, now.currency),
                    "monthly_benefit": costing.quantize_money(now.monthly_benefit * benefit_share, now.currency),
                    "npv": costing.quantize_money(now.npv * benefit_share, now.currency),
                },
            )
