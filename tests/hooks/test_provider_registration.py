"""Airflow discovers the distribution as a provider with both connection types and their forms."""

from __future__ import annotations

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
    assert behaviours["nylas"]["relabeling"]["password"] == "API key"
    assert "login" in behaviours["nylas"]["hidden_fields"]
    assert behaviours["dataverse"]["relabeling"]["login"] == "Client (application) ID"
    widgets = manager.connection_form_widgets
    assert any(name.endswith("tenant_id") for name in widgets)
    assert any(name.endswith("page_size") for name in widgets)
