"""Reads of the portfolio, scoped to what a user may see."""
from __future__ import annotations

from django.contrib.auth.models import AbstractBaseUser, AnonymousUser
from django.db.models import Prefetch, QuerySet

from portfolio.models import MANAGERS_GROUP, Deployment, Membership, ProofOfConcept, Team, UseCase

User = AbstractBaseUser | AnonymousUser


def is_portfolio_manager(user: User) -> bool:
    if not user.is_authenticated or not user.is_active:
        return False
    if user.is_superuser:
        return True
    # Cached on the instance: asked on every request, answered by one query.
    if not hasattr(user, "_is_portfolio_manager"):
        user._is_portfolio_manager = user.groups.filter(name=MANAGERS_GROUP).exists()
    return user._is_portfolio_manager


def team_ids_of(user: User, *, role: str | None = None) -> QuerySet:
    memberships = Membership.objects.filter(user_id=user.pk)
    if role is not None:
        memberships = memberships.filter(role=role)
    return memberships.values("team_id")


def visible_teams(*, user: User) -> QuerySet[Team]:
    if is_portfolio_manager(user):
        return Team.objects.all()
    if not user.is_authenticated:
        return Team.objects.none()
    return Team.objects.filter(pk__in=team_ids_of(user))


def visible_use_cases(*, user: User) -> QuerySet[UseCase]:
    # Scoping lives here, so no view can forget it.
    use_cases = UseCase.objects.select_related("team", "owner")
    if is_portfolio_manager(user):
        return use_cases
    if not user.is_authenticated:
        return use_cases.none()
    return use_cases.filter(team_id__in=team_ids_of(user))


def visible_deployments(*, user: User) -> QuerySet[Deployment]:
    return Deployment.objects.filter(use_case__in=visible_use_cases(user=user).values("pk")).select_related(
        "use_case__team", "model__licence", "self_hosting_profile"
    )


def visible_pocs(*, user: User) -> QuerySet[ProofOfConcept]:
    return ProofOfConcept.objects.filter(use_case__in=visible_use_cases(user=user).values("pk")).select_related(
        "use_case__team", "model"
    )


def use_case_detail(*, user: User) -> QuerySet[UseCase]:
    return visible_use_cases(user=user).prefetch_related(
        Prefetch("deployments", queryset=Deployment.objects.select_related("model__licence", "self_hosting_profile")),
        Prefetch("pocs", queryset=ProofOfConcept.objects.select_related("model")),
    )
