import datetime
import uuid
from decimal import Decimal

import factory
from django.contrib.auth import get_user_model
from django.contrib.auth.models import Group
from django.utils import timezone

from portfolio.models import (
    MANAGERS_GROUP,
    ChecklistTemplate,
    Deployment,
    GovernanceFramework,
    Membership,
    ProofOfConcept,
    Team,
    UseCase,
    WebhookDelivery,
    WebhookEvent,
    WebhookSubscription,
)
from pricing.models import ExchangeRate, GpuRate, LanguageModel, Licence, Price, Provider


class UserFactory(factory.django.DjangoModelFactory):
    class Meta:
        model = get_user_model()
        django_get_or_create = ["username"]

    username = factory.Sequence(lambda n: f"user{n}")
    email = factory.LazyAttribute(lambda user: f"{user.username}@example.com")
    password = factory.django.Password("pw-for-tests")


def make_manager(**kwargs):
    user = UserFactory(**kwargs)
    user.groups.add(Group.objects.get(name=MANAGERS_GROUP))
    return user


class TeamFactory(factory.django.DjangoModelFactory):
    class Meta:
        model = Team
        django_get_or_create = ["slug"]

    name = factory.Sequence(lambda n: f"Team {n}")
    slug = factory.Sequence(lambda n: f"team-{n}")


class MembershipFactory(factory.django.DjangoModelFactory):
    class Meta:
        model = Membership

    user = factory.SubFactory(UserFactory)
    team = factory.SubFactory(TeamFactory)
    role = Membership.Role.MEMBER


class ProviderFactory(factory.django.DjangoModelFactory):
    class Meta:
        model = Provider
        django_get_or_create = ["key"]

    key = factory.Sequence(lambda n: f"provider-{n}")
    name = factory.LazyAttribute(lambda provider: provider.key.title())


class LicenceFactory(factory.django.DjangoModelFactory):
    class Meta:
        model = Licence
        django_get_or_create = ["key"]

    key = factory.Sequence(lambda n: f"licence-{n}")
    name = factory.LazyAttribute(lambda licence: licence.key)


class LanguageModelFactory(factory.django.DjangoModelFactory):
    class Meta:
        model = LanguageModel
        django_get_or_create = ["key"]

    provider = factory.SubFactory(ProviderFactory)
    key = factory.Sequence(lambda n: f"test/model-{n}")
    display_name = factory.LazyAttribute(lambda model: model.key)
    licence = factory.SubFactory(LicenceFactory)


class PriceFactory(factory.django.DjangoModelFactory):
    class Meta:
        model = Price

    model = factory.SubFactory(LanguageModelFactory)
    input_per_million = Decimal("1.00")
    output_per_million = Decimal("2.00")
    currency = "USD"
    effective_from = datetime.date(2024, 1, 1)


class ExchangeRateFactory(factory.django.DjangoModelFactory):
    class Meta:
        model = ExchangeRate

    base = "USD"
    quote = "JPY"
    rate = Decimal("150")
    as_of = datetime.date(2024, 1, 1)


class GpuRateFactory(factory.django.DjangoModelFactory):
    class Meta:
        model = GpuRate

    gpu_type = "T4"
    hourly_cost = Decimal("0.50")
    effective_from = datetime.date(2024, 1, 1)


class UseCaseFactory(factory.django.DjangoModelFactory):
    class Meta:
        model = UseCase

    team = factory.SubFactory(TeamFactory)
    title = factory.Sequence(lambda n: f"Use case {n}")


class DeploymentFactory(factory.django.DjangoModelFactory):
    class Meta:
        model = Deployment

    use_case = factory.SubFactory(UseCaseFactory)
    model = factory.SubFactory(LanguageModelFactory)
    status = Deployment.Status.ACTIVE


class ProofOfConceptFactory(factory.django.DjangoModelFactory):
    class Meta:
        model = ProofOfConcept

    use_case = factory.SubFactory(UseCaseFactory)
    hypothesis = "It helps."


class ChecklistTemplateFactory(factory.django.DjangoModelFactory):
    class Meta:
        model = ChecklistTemplate
        django_get_or_create = ["code"]

    code = factory.Sequence(lambda n: f"test-item-{n}")
    framework = GovernanceFramework.CORE
    category = ChecklistTemplate.Category.ETHICS
    title = factory.LazyAttribute(lambda template: f"Checklist item {template.code}")
    kind = ChecklistTemplate.Kind.MANUAL


class WebhookSubscriptionFactory(factory.django.DjangoModelFactory):
    """A subscription saved as it is: no check of the target's addresses."""

    class Meta:
        model = WebhookSubscription

    target_url = "https://hooks.example.com/portfolio"
    events = factory.LazyFunction(lambda: [WebhookEvent.USE_CASE_CREATED.value])
    secret = factory.Sequence(lambda n: f"test-secret-{n}")


class WebhookDeliveryFactory(factory.django.DjangoModelFactory):
    class Meta:
        model = WebhookDelivery

    subscription = factory.SubFactory(WebhookSubscriptionFactory)
    event_type = WebhookEvent.USE_CASE_CREATED
    event_id = factory.LazyFunction(uuid.uuid4)
    payload = factory.LazyAttribute(lambda d: {"id": str(d.event_id), "type": d.event_type, "data": {}})
    status = WebhookDelivery.Status.DELIVERED
    attempts = 1
    delivered_at = factory.LazyFunction(timezone.now)
