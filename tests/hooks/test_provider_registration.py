"""Airflow discovers the distribution as a provider with both connection types and their forms."""

from __future__ import annotations

import pytest
from airflow.api_fastapi.core_api.datamodels.connections import ConnectionHookMetaData
from airflow.api_fastapi.core_api.services.ui.connections import HookMetaService
from airflow.providers_manager import ProvidersManager
from airflow.sdk.providers_manager_runtime import ProvidersManagerTaskRuntime


def test_both_connection_types_are_registered_with_their_hooks() -> None:
    assert "nylas-dataverse" in ProvidersManager().providers
    hooks = ProvidersManagerTaskRuntime().hooks
    assert hooks["nylas"].hook_class_name == "nylas_dataverse.hooks.nylas.NylasHook"
    assert hooks["nylas"].connection_id_attribute_name == "nylas_conn_id"
    assert hooks["dataverse"].hook_class_name == "nylas_dataverse.hooks.dataverse.DataverseHook"
    assert hooks["dataverse"].connection_id_attribute_name == "dataverse_conn_id"


def test_connection_forms_relabel_hide_and_add_fields() -> None:
    manager = ProvidersManager()
    behaviours = manager.field_behaviours
    assert behaviours["nylas"]["relabeling"]["password"].startswith("API key")
    assert "login" in behaviours["nylas"]["hidden_fields"]
    assert behaviours["dataverse"]["relabeling"]["login"].startswith("Client (application) ID")
    widgets = manager.connection_form_widgets
    assert any(name.endswith("tenant_id") for name in widgets)
    assert any(name.endswith("page_size") for name in widgets)


def _form(conn_type: str) -> ConnectionHookMetaData:
    """What the UI's connection form is built from (``GET /ui/connections/hook_meta``)."""
    return next(meta for meta in HookMetaService.hook_meta_data() if meta.connection_type == conn_type)


@pytest.mark.parametrize("conn_type", ["nylas", "dataverse"])
def test_every_field_the_form_shows_carries_help(conn_type: str) -> None:
    form = _form(conn_type)
    assert form.standard_fields is not None
    shown = {
        name: spec
        for name, spec in form.standard_fields.model_dump().items()
        if spec is None or not spec["hidden"]
    }
    # A field Airflow gets no behaviour for is shown with its bare default label ("Host", "Port").
    assert all(spec is not None for spec in shown.values()), shown
    assert "port" in shown, "Test needs a stored port on Airflow 3.3.2, so the form must offer it"
    for name, spec in shown.items():
        assert "(" in (spec["title"] or ""), f"{name}: the label carries no hint: {spec}"
        if name != "description":  # Airflow 3.3.2 cannot give the description a placeholder
            assert spec["placeholder"], f"{name} has no placeholder"
    assert form.extra_fields
    for name, field in form.extra_fields.items():
        assert len(field["description"] or "") > 20, f"{name} has no help text"


@pytest.mark.parametrize("conn_type", ["nylas", "dataverse"])
def test_no_extra_field_is_flagged_required_before_anything_is_typed(conn_type: str) -> None:
    # The React form marks a field required, and shows "required" under an empty one at once, when its
    # schema type excludes null. The hooks check what they need and say so instead.
    for name, field in (_form(conn_type).extra_fields or {}).items():
        types = field["schema"]["type"]
        assert isinstance(types, list), f"{name} would be flagged required: {types}"
        assert "null" in types, f"{name} would be flagged required: {types}"
