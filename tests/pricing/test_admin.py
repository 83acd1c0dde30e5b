import datetime
from decimal import Decimal

import pytest
from django.urls import reverse

from portfolio.models import UseCase
from pricing.models import (
    ExchangeRate,
    GpuRate,
    LanguageModel,
    Licence,
    ModelAlias,
    Price,
    Provider,
    SelfHostingProfile,
)
from tests.factories import DeploymentFactory, UserFactory

pytestmark = pytest.mark.django_db

PRICING_MODELS = [Provider, Licence, LanguageModel, ModelAlias, Price, ExchangeRate, GpuRate, SelfHostingProfile]


def admin_url(model, view: str, *args) -> str:
    return reverse(f"admin:{model._meta.app_label}_{model._meta.model_name}_{view}", args=args)


@pytest.fixture
def superuser_client(client):
    client.force_login(UserFactory(username="root", is_staff=True, is_superuser=True))
    return client


def price_form(model: LanguageModel, **fields) -> dict[str, str]:
    return {
        "model": str(model.pk),
        "team": "",
        "input_per_million": "2.00",
        "output_per_million": "8.00",
        "cached_input_per_million": "",
        "currency": "USD",
        "effective_from": "2026-01-01",
        "source": Price.Source.MANUAL,
        "source_url": "",
        **fields,
    }


@pytest.mark.parametrize("model", PRICING_MODELS, ids=lambda model: model.__name__)
def test_changelist_renders(superuser_client, model):
    assert superuser_client.get(admin_url(model, "changelist")).status_code == 200


@pytest.mark.parametrize("model", PRICING_MODELS, ids=lambda model: model.__name__)
def test_add_page_renders(superuser_client, model):
    assert superuser_client.get(admin_url(model, "add")).status_code == 200


@pytest.mark.parametrize("model", PRICING_MODELS, ids=lambda model: model.__name__)
def test_change_page_renders(superuser_client, model, gpt4o):
    # The shipped catalogue has no aliases: one is made here.
    ModelAlias.objects.create(name="gpt-4o", model=gpt4o)
    obj = model.objects.order_by("pk")[0]

    assert superuser_client.get(admin_url(model, "change", obj.pk)).status_code == 200


def test_price_change_page_is_view_only(superuser_client, gpt4o):
    price = Price.objects.get(model=gpt4o)

    response = superuser_client.get(admin_url(Price, "change", price.pk))

    assert response.status_code == 200
    assert b'name="_save"' not in response.content
    assert b'value="Save"' not in response.content


def test_price_cannot_be_changed_by_post(superuser_client, gpt4o):
    price = Price.objects.get(model=gpt4o)

    response = superuser_client.post(
        admin_url(Price, "change", price.pk), price_form(gpt4o, input_per_million="0.01", effective_from="2024-08-06")
    )

    assert response.status_code == 403
    price_after = Price.objects.get(pk=price.pk)
    assert price_after.input_per_million == Decimal("2.50")
    assert Price.objects.filter(model=gpt4o).count() == 1


def test_adding_a_price_in_the_admin_creates_a_row_and_flags_use_cases(superuser_client, gpt4o, llama70b):
    on_gpt4o = DeploymentFactory(model=gpt4o).use_case
    on_llama = DeploymentFactory(model=llama70b).use_case
    UseCase.objects.update(needs_recompute=False)

    response = superuser_client.post(admin_url(Price, "add"), price_form(gpt4o))

    assert response.status_code == 302
    new = Price.objects.get(model=gpt4o, effective_from=datetime.date(2026, 1, 1))
    assert (new.input_per_million, new.output_per_million) == (Decimal("2.00"), Decimal("8.00"))
    assert Price.objects.get(model=gpt4o, effective_from=datetime.date(2024, 8, 6)).input_per_million == Decimal("2.50")
    assert UseCase.objects.get(pk=on_gpt4o.pk).needs_recompute is True
    assert UseCase.objects.get(pk=on_llama.pk).needs_recompute is False


def test_adding_a_duplicate_price_in_the_admin_shows_the_form_again(superuser_client, gpt4o):
    response = superuser_client.post(admin_url(Price, "add"), price_form(gpt4o, effective_from="2024-08-06"))

    assert response.status_code == 200
    assert response.context["adminform"].form.errors
    assert Price.objects.filter(model=gpt4o).count() == 1


def test_adding_a_price_in_the_admin_logs_and_links_the_new_row(client, gpt4o):
    from django.contrib.admin.models import LogEntry

    client.force_login(UserFactory(username="root", is_staff=True, is_superuser=True))
    response = client.post(admin_url(Price, "add"), {**price_form(gpt4o), "_continue": "1"})

    new = Price.objects.get(model=gpt4o, effective_from=datetime.date(2026, 1, 1))
    assert response["Location"] == admin_url(Price, "change", new.pk)
    assert LogEntry.objects.get().object_id == str(new.pk)


def test_history_pages_cannot_revert_a_price(client, gpt4o):
    from pricing.services import add_price

    client.force_login(UserFactory(username="root", is_staff=True, is_superuser=True))
    price = add_price(
        model=gpt4o,
        input_per_million=Decimal("2.00"),
        output_per_million=Decimal("8.00"),
        effective_from=datetime.date(2026, 1, 1),
    )
    url = reverse("admin:pricing_price_simple_history", args=(price.pk, price.history.get().history_id))

    response = client.post(url, price_form(gpt4o, input_per_million="0.01", effective_from="2026-02-01"))

    assert response.status_code in (302, 403)
    assert not Price.objects.filter(model=gpt4o, effective_from=datetime.date(2026, 2, 1)).exists()


def test_the_model_admin_finds_a_model_by_alias_and_lists_its_aliases(superuser_client, gpt4o):
    ModelAlias.objects.create(name="gpt-4o-2024-08-06", model=gpt4o, source=ModelAlias.Source.LITELLM)

    found = superuser_client.get(admin_url(LanguageModel, "changelist"), {"q": "gpt-4o-2024-08-06"})
    change = superuser_client.get(admin_url(LanguageModel, "change", gpt4o.pk))

    assert list(found.context["cl"].result_list) == [gpt4o]
    assert 'value="gpt-4o-2024-08-06"' in change.content.decode()
