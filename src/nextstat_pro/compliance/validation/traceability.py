"""The traceability matrix: requirement → tests → evidence, for 21 CFR Part 11 and EU Annex 11.

Requirement ids are those of the regulations list the project traces (``P11-10e``, ``AX11-9``, ...:
stable ids over a paraphrase of the rules; the titles here are short names of our own, not the rules'
words). Each row names:

- ``tests``: pytest node ids of the product's suite that show the software meets it (checked by
  tests/test_traceability.py: every software row has one, and every one exists);
- ``evidence``: ids of this pack's IQ/OQ checks that show it on the installation being qualified
  (their pass or fail decides the row's status there);
- ``procedure``: what the customer's procedures must add, and why, where software alone cannot meet it.

A row's status: ``met`` (software, its evidence passed), ``met with procedure`` (software's part met;
the procedure named completes it), ``customer procedure`` (procedure only; what the software
provides is in ``evidence``/``tests``), ``software gap`` (software should meet it and does not yet:
``gap`` says what is missing, ``procedure`` what covers it meanwhile), ``not met`` (an evidence check
failed here), ``not applicable``.
"""

from __future__ import annotations

from dataclasses import dataclass

from .models import Check, TraceabilityMatrix, TraceRow

SOURCES = [
    "21 CFR Part 11, Electronic Records; Electronic Signatures (subparts B and C: 11.10 to 11.300)",
    "FDA guidance: Part 11, Electronic Records; Electronic Signatures - Scope and Application (2003)",
    "FDA guidance: Data Integrity and Compliance With Drug CGMP (2018)",
    "EudraLex Volume 4, Annex 11: Computerised Systems (2011)",
]


@dataclass(frozen=True)
class Requirement:
    id: str
    regulation: str
    title: str
    kind: str  # S, S+P, P, n/a
    tests: tuple[str, ...]
    evidence: tuple[str, ...] = ()
    procedure: str | None = None
    gap: str | None = None  # what the software lacks to meet a software requirement (reported, never hidden)


T = "tests/"
AUDIT_TAMPER = T + "test_audit_tamper.py::test_every_mutation_is_detected"
STATE_TAMPER = T + "test_audit_state.py::test_each_insider_edit_of_a_state_table_is_named"
RBAC_MATRIX = T + "test_rbac.py::test_every_operation_with_every_role"
RBAC_PATHS = T + "test_rbac.py::test_every_public_service_function_authorizes_on_every_path"
VIEWER_AUDITED = T + "test_identity.py::test_viewer_cannot_write_and_the_attempt_is_audited"
REAUTH = T + "test_signing.py::test_reauthentication_rules"
SIGN_FLOW = T + "test_signing.py::test_review_then_approval_then_export_verifies"
SIGN_BOUND = T + "test_signing.py::test_signature_is_bound_to_its_run_and_manifest"
OTHERS_KEY = T + "test_signing.py::test_nobody_can_sign_with_anothers_key"
EXPORT_VERIFY = T + "test_verify_signatures_bound.py::test_a_clean_signed_export_verifies_with_keys_from_the_log"
EXPORT_EDITED = T + "test_verify_signatures_bound.py::test_an_edited_export_fails_offline"
BUNDLE = T + "test_audit_proofs.py::test_bundle_round_trip_and_tampering"
CSV_BUNDLE = T + "test_audit_proofs.py::test_csv_bundle_opens_as_one_row_per_event"
HISTORY = T + "test_audit_events.py::test_history_shows_every_before_and_after"
EVENTS = T + "test_audit_events.py::test_every_operation_has_exactly_its_events"
REASON = T + "test_audit_events.py::test_changes_need_a_reason"
DB_GUARDS = T + "test_audit_events.py::test_database_refuses_update_and_delete"
BAD_INPUT = T + "test_runs.py::test_bad_input_writes_nothing"
PACK = T + "test_validation_pack.py::"
MANIFESTATION = T + "test_text_rules.py::test_a_signature_reason_and_the_signer_as_every_manifestation_shows_them"

REQUIREMENTS: tuple[Requirement, ...] = (
    Requirement("P11-10a", "21 CFR 11.10(a)", "Validated system; invalid or altered records discernible", "S+P",
                (T + "test_physics_vs_pyhf.py::test_generated_workspace_agrees_with_pyhf", AUDIT_TAMPER,
                 T + "test_store.py::test_local_tampered_bytes_fail_the_read",
                 PACK + "test_pack_has_iq_oq_pq_and_a_complete_matrix"),
                ("OQ-REF-FIT-SMALL", "OQ-XCHK-SMALL", "OQ-TAMPER-EDIT", "OQ-DSSE-TAMPER", "IQ-DIST-FILES"),
                "The customer's validation plan and acceptance of this pack (IQ/OQ/PQ) under their quality system."),
    Requirement("P11-10b", "21 CFR 11.10(b)", "Accurate, complete human-readable and electronic copies", "S",
                (T + "test_runs.py::test_export_checks_with_sha256sum", CSV_BUNDLE, BUNDLE),
                ("OQ-ESIG-VERIFY", "OQ-AUDIT-TRAIL")),
    Requirement("P11-10c", "21 CFR 11.10(c)", "Records protected and retrievable through retention", "S+P",
                (T + "test_store.py::test_round_trip_and_write_once",
                 T + "test_hub.py::test_archive_and_purge_follow_the_policy",
                 T + "test_audit_state.py::test_a_clean_instance_after_a_session_of_work_verifies"),
                ("IQ-STORE", "OQ-AUDIT-VERIFY"),
                "Retention periods per record class (config retention.min_years) set to the customer's record-"
                "retention schedule; storage media and their backups are the customer's infrastructure."),
    Requirement("P11-10d", "21 CFR 11.10(d)", "Access limited to authorized individuals", "S",
                (T + "test_identity.py::test_login_and_authenticate", RBAC_MATRIX,
                 T + "test_security_permissions.py::test_fresh_instance_is_owner_only_whatever_the_umask"),
                ("OQ-AUTH-REFUSED", "OQ-RBAC-DENIED")),
    Requirement("P11-10e", "21 CFR 11.10(e)", "Secure, time-stamped audit trail; earlier values kept", "S",
                (EVENTS, HISTORY, DB_GUARDS, AUDIT_TAMPER,
                 T + "test_pg_privileges.py::test_application_role_cannot_rewrite_the_audit_tables"),
                ("OQ-AUDIT-TRAIL", "OQ-AUDIT-VERIFY", "OQ-TAMPER-REHASH", "OQ-TAMPER-EDIT", "IQ-CLOCK")),
    Requirement("P11-10f", "21 CFR 11.10(f)", "Operational checks enforce the sequence of steps", "S",
                (SIGN_FLOW, T + "test_signing.py::test_failed_run_cannot_be_approved",
                 T + "test_runs.py::test_a_run_finishes_once"),
                ("OQ-ESIG-CONTROLS",)),
    Requirement("P11-10g", "21 CFR 11.10(g)", "Authority checks for signing, altering and operating", "S",
                (RBAC_MATRIX, RBAC_PATHS, T + "test_signing.py::test_approval_rights_come_from_the_approval_policy"),
                ("OQ-RBAC-DENIED", "OQ-ESIG-CONTROLS")),
    Requirement("P11-10h", "21 CFR 11.10(h)", "Device checks: validity of the source of input", "S+P",
                (T + "test_identity.py::test_api_tokens_are_scoped_and_capped", BAD_INPUT,
                 T + "test_engine.py::test_json_that_is_not_a_workspace_names_the_path"),
                ("OQ-INPUT-REFUSED", "OQ-AUTH-REFUSED"),
                "Which terminals and networks may reach the instance (firewalls, the server's TLS endpoint) is the "
                "customer's infrastructure; every request is tied to a credential and its interface is recorded."),
    Requirement("P11-10i", "21 CFR 11.10(i)", "Education, training and experience of people", "P", (),
                procedure="Training records of developers, administrators and users are kept under the customer's "
                          "training SOP; software cannot establish qualification of people."),
    Requirement("P11-10j", "21 CFR 11.10(j)", "Written policies: accountability for e-signatures", "P", (),
                procedure="A signed policy holding users accountable for their electronic signatures; the software "
                          "records who signed what, with meaning and reason (OQ-ESIG-VERIFY)."),
    Requirement("P11-10k", "21 CFR 11.10(k)", "Control of system documentation, with change control", "S+P",
                (T + "test_public_api.py::test_audit_schema_published_in_docs_is_the_packaged_one",
                 T + "test_view_schemas.py::test_committed_schemas_are_the_generated_ones",
                 PACK + "test_shipped_pins_are_the_projects_constraints"),
                ("IQ-DIST-PINS", "IQ-DIST-FILES", "IQ-DB-SCHEMA"),
                "Distribution of and access to SOPs and this pack under the customer's document control."),
    Requirement("P11-30", "21 CFR 11.30", "Open systems: encryption and digital signatures", "S",
                (T + "test_signing.py::test_envelope_verifies_with_securesystemslib", EXPORT_VERIFY,
                 T + "test_audit_proofs.py::test_inclusion_proof_verifies_offline_and_tampering_fails"),
                ("OQ-DSSE-TAMPER", "OQ-DSSE-FOREIGN-KEY")),
    Requirement("P11-50a", "21 CFR 11.50(a)", "Signature shows printed name, date and time, meaning", "S",
                (SIGN_FLOW, MANIFESTATION,
                 T + "test_text_rules.py::test_verify_and_sign_show_the_username_beside_the_printed_name"),
                ("OQ-ESIG-VERIFY",)),
    Requirement("P11-50b", "21 CFR 11.50(b)", "Manifestation controlled like the record, in every readable form",
                "S", (MANIFESTATION, SIGN_BOUND, EXPORT_EDITED), ("OQ-ESIG-VERIFY", "OQ-ESIG-TAMPER")),
    Requirement("P11-70", "21 CFR 11.70", "Signatures linked to their records; cannot be excised or moved", "S",
                (SIGN_BOUND,
                 T + "test_verify_signatures_bound.py::test_an_approval_replaced_by_a_rejection_fails_offline",
                 T + "test_verify_signatures_bound.py::test_a_forged_key_row_and_signature_row_fail_offline"),
                ("OQ-ESIG-TAMPER", "OQ-ESIG-VERIFY")),
    Requirement("P11-100a", "21 CFR 11.100(a)", "Each signature unique to one person, never reassigned", "S",
                (OTHERS_KEY, T + "test_identity.py::test_disabled_user_cannot_sign_in_or_be_recreated",
                 T + "test_text_rules.py::test_a_printed_name_an_active_user_reads_as_is_refused"),
                ("OQ-ESIG-VERIFY", "OQ-ESIG-TAMPER")),
    Requirement("P11-100b", "21 CFR 11.100(b)", "Identity verified before an e-signature is established", "P",
                (T + "test_admin_reset.py::test_the_two_admin_path_marks_the_key",),
                procedure="Identity proofing of each person before an administrator creates their account (the "
                          "customer's onboarding SOP); accounts and keys created are audited (user.created, "
                          "user.key_created)."),
    Requirement("P11-100c", "21 CFR 11.100(c)", "Certification to FDA of legally binding equivalence", "P", (),
                procedure="A letter of certification submitted by the customer to FDA; no software function applies."),
    Requirement("P11-200a1", "21 CFR 11.200(a)(1)", "Two components; full re-authentication outside a session",
                "S", (REAUTH, T + "test_server_api.py::test_signing_over_http_needs_the_password_again"),
                ("OQ-ESIG-CONTROLS",)),
    Requirement("P11-200a2", "21 CFR 11.200(a)(2)", "Used only by their genuine owners", "S+P",
                (OTHERS_KEY,
                 T + "test_security_passwords.py::test_signing_key_opens_with_the_password_in_either_unicode_form"),
                ("OQ-ESIG-CONTROLS", "OQ-ESIG-TAMPER"),
                "Users keep their passwords secret (the accountability policy of P11-10j)."),
    Requirement("P11-200a3", "21 CFR 11.200(a)(3)", "Use by another needs two or more people to collude", "S",
                (T + "test_admin_reset.py::test_an_admin_who_created_the_account_cannot_sign_unmarked",
                 T + "test_admin_reset.py::test_the_two_admin_path_marks_the_key", OTHERS_KEY),
                ("OQ-ESIG-TAMPER",)),
    Requirement("P11-200b", "21 CFR 11.200(b)", "Biometric signatures", "n/a", (),
                procedure="Not applicable: the product has no biometric signatures."),
    Requirement("P11-300a", "21 CFR 11.300(a)", "Unique ID and password combinations", "S",
                (T + "test_identity.py::test_disabled_user_cannot_sign_in_or_be_recreated",
                 T + "test_security_passwords.py::test_weak_passwords_are_refused_in_one_line_without_echo"),
                ("OQ-AUTH-REFUSED",)),
    Requirement("P11-300b", "21 CFR 11.300(b)", "Identification codes and passwords periodically checked", "S",
                (T + "test_identity.py::test_expired_and_revoked_credentials",
                 T + "test_admin_reset.py::test_the_email_path_end_to_end"),
                ("OQ-AUTH-REFUSED",),
                "Until the product ages passwords: a periodic review of accounts (user list) and a password "
                "revision schedule enforced by administrators (password resets), under the customer's procedure.",
                gap="No password expiry (aging): sessions and API tokens expire, and administrators can disable "
                    "accounts and force resets, but a password is never required to change."),
    Requirement("P11-300c", "21 CFR 11.300(c)", "Loss management: deauthorize lost credentials", "S+P",
                (T + "test_identity.py::test_token_list_and_revoke_need_their_own_permissions",
                 T + "test_identity.py::test_expired_and_revoked_credentials",
                 T + "test_admin_reset.py::test_the_two_admin_path_marks_the_key"),
                ("OQ-AUTH-REFUSED",),
                "Reporting a lost or compromised credential to the administrators, who revoke it (token revoke, "
                "user disable) and issue a replacement (password reset), is the customer's procedure."),
    Requirement("P11-300d", "21 CFR 11.300(d)", "Detect and report unauthorized use attempts", "S",
                (T + "test_identity.py::test_wrong_passwords_lock_the_account_and_are_audited", VIEWER_AUDITED,
                 T + "test_login_unknown_user.py::test_every_refusal_answers_alike_and_each_cause_is_audited"),
                ("OQ-AUTH-REFUSED", "OQ-RBAC-DENIED")),
    Requirement("P11-300e", "21 CFR 11.300(e)", "Devices bearing codes tested periodically", "S+P",
                (T + "test_identity.py::test_api_tokens_are_scoped_and_capped",),
                ("OQ-AUTH-REFUSED",),
                "API tokens are software credentials with expiry and scope; hardware tokens, if the customer's "
                "single sign-on uses them, are tested under the customer's procedure."),
    Requirement("AX11-4", "Annex 11 §4", "Validation: documented evidence, requirements traceable", "S+P",
                (PACK + "test_pack_has_iq_oq_pq_and_a_complete_matrix",
                 T + "test_traceability.py::test_every_software_requirement_names_existing_tests"),
                ("IQ-DIST-PINS", "OQ-REF-FIT-SMALL", "OQ-XCHK-SMALL"),
                "The customer's validation plan, user requirements and system inventory; this pack is its evidence."),
    Requirement("AX11-5", "Annex 11 §5", "Built-in checks on data exchanged electronically", "S",
                (BAD_INPUT, T + "test_schemas.py::test_shared_workspaces_validate",
                 T + "test_pyhf_interop.py::test_we_accept_exactly_the_patchsets_pyhf_verifies",
                 T + "test_hub.py::test_bad_inputs_store_nothing"),
                ("OQ-INPUT-REFUSED", "OQ-DSSE-TAMPER")),
    Requirement("AX11-6", "Annex 11 §6", "Accuracy check of critical manually entered data", "S+P",
                (T + "test_cli_errors.py::test_non_finite_parameters_are_refused",
                 T + "test_text_rules.py::test_reasons_tags_descriptions_params_through_the_services"),
                ("OQ-INPUT-REFUSED",),
                "A second-person check of critical parameters is the review signature (meaning review) required "
                "by the approval policy; which data are critical is the customer's decision."),
    Requirement("AX11-7.1", "Annex 11 §7.1", "Data secured; accessibility and integrity checked", "S+P",
                (T + "test_store.py::test_local_tampered_bytes_fail_the_read",
                 T + "test_security_permissions.py::test_after_runs_pushes_and_exports_nothing_is_readable",
                 AUDIT_TAMPER),
                ("IQ-STORE", "IQ-WITNESS", "OQ-AUDIT-VERIFY"),
                "Physical security of servers and storage is the customer's infrastructure."),
    Requirement("AX11-7.2", "Annex 11 §7.2", "Regular backups; restore checked", "S+P",
                (BUNDLE, T + "test_audit_state.py::test_a_clean_instance_after_a_session_of_work_verifies"),
                ("OQ-AUDIT-VERIFY", "OQ-AUDIT-TRAIL"),
                "Backups of the database, object store and witness are the customer's procedure; after a restore, "
                "audit verify re-derives and checks everything (run it as the restore test)."),
    Requirement("AX11-8.1", "Annex 11 §8.1", "Clear printed copies", "S",
                (CSV_BUNDLE, T + "test_cli.py::test_run_list_show_artifacts_export"),
                ("OQ-AUDIT-TRAIL",)),
    Requirement("AX11-8.2", "Annex 11 §8.2", "Printouts show whether data changed since entry", "S",
                (HISTORY, EXPORT_EDITED), ("OQ-AUDIT-TRAIL",)),
    Requirement("AX11-9", "Annex 11 §9", "Audit trail of changes with reasons; intelligible; reviewed", "S+P",
                (EVENTS, REASON, HISTORY, T + "test_audit_events.py::test_log_filters_and_stable_pagination"),
                ("OQ-AUDIT-TRAIL", "OQ-AUDIT-VERIFY"),
                "Regular review of the audit trail (report audit-review) on the customer's risk-based schedule."),
    Requirement("AX11-10", "Annex 11 §10", "Controlled changes to the system", "S+P",
                (T + "test_audit_state.py::test_config_json_is_re_derived_from_init_and_its_audited_changes",
                 T + "test_instance.py::test_upgrade_is_idempotent",
                 T + "test_audit_events.py::test_config_change_and_its_event_commit_together"),
                ("IQ-DIST-PINS", "IQ-DIST-FILES", "IQ-DB-SCHEMA"),
                "Upgrades follow the customer's change-control procedure, with this pack re-run as its evidence."),
    Requirement("AX11-11", "Annex 11 §11", "Periodic evaluation", "S+P",
                (T + "test_audit_state.py::test_a_clean_instance_after_a_session_of_work_verifies",),
                ("OQ-AUDIT-VERIFY", "IQ-DIST-FILES"),
                "Periodic review of the system is scheduled by the customer; re-running this pack is its evidence."),
    Requirement("AX11-12.1", "Annex 11 §12.1", "Access restricted to authorized persons", "S",
                (RBAC_MATRIX, T + "test_security_permissions.py::test_fresh_instance_is_owner_only_whatever_the_umask"),
                ("OQ-RBAC-DENIED", "OQ-AUTH-REFUSED")),
    Requirement("AX11-12.3", "Annex 11 §12.3", "Access authorizations recorded", "S",
                (EVENTS, T + "test_auditor.py::test_granting_and_revoking_the_auditor_role_is_audited"),
                ("OQ-AUDIT-VERIFY",)),
    Requirement("AX11-12.4", "Annex 11 §12.4", "Operator identity recorded with date and time", "S",
                (EVENTS, HISTORY), ("OQ-AUDIT-TRAIL", "IQ-CLOCK")),
    Requirement("AX11-13", "Annex 11 §13", "Incidents reported and assessed", "S+P",
                (T + "test_runs.py::test_failed_task_is_a_failed_run_with_error_and_log",
                 T + "test_run_leases.py::test_expired_leases_are_recovered_once_with_their_event"),
                ("OQ-AUDIT-VERIFY",),
                "Incident management (assessment, root cause, CAPA) is the customer's procedure; failures and "
                "security refusals are recorded events it starts from."),
    Requirement("AX11-14", "Annex 11 §14", "E-signatures: binding, permanently linked, time-stamped", "S",
                (SIGN_BOUND, SIGN_FLOW, EXPORT_VERIFY), ("OQ-ESIG-VERIFY", "OQ-ESIG-TAMPER")),
    Requirement("AX11-16", "Annex 11 §16", "Business continuity", "P", (),
                procedure="Provisions for availability when systems break down are the customer's continuity plan."),
    Requirement("AX11-17", "Annex 11 §17", "Archived data accessible, readable, intact; retrieval tested", "S+P",
                (T + "test_hub.py::test_archive_and_purge_follow_the_policy", BUNDLE, EXPORT_VERIFY),
                ("OQ-ESIG-VERIFY", "OQ-AUDIT-TRAIL"),
                "Archive media and their periodic retrieval tests are the customer's procedure; exported runs and "
                "audit bundles verify offline, without the system."),
    Requirement("DI-2018-AT", "FDA data integrity guidance (2018)", "Audit trails reviewed before approval", "S+P",
                (SIGN_FLOW, HISTORY), ("OQ-AUDIT-TRAIL", "OQ-ESIG-CONTROLS"),
                "Who reviews which audit trail when (report audit-review) is the customer's risk-based procedure."),
)

# Checks every pack has (whatever its options): a software requirement's evidence must include one.
ALWAYS = {"IQ-PYTHON", "IQ-DIST-PINS", "IQ-DIST-FILES", "IQ-ENGINE", "IQ-DB-SCHEMA", "IQ-STORE", "IQ-WITNESS",
          "IQ-CLOCK", "OQ-REF-FIT-SMALL", "OQ-REF-LIMIT-SMALL", "OQ-REF-HYPOTEST-SMALL", "OQ-REF-SCAN-SMALL",
          "OQ-REF-FIT-EXAMPLE", "OQ-REF-FIT-PATCH", "OQ-REF-LIMIT-EXAMPLE", "OQ-REF-PK", "OQ-XCHK-SMALL",
          "OQ-RBAC-DENIED", "OQ-AUTH-REFUSED", "OQ-ESIG-CONTROLS", "OQ-ESIG-VERIFY", "OQ-DSSE-TAMPER",
          "OQ-DSSE-FOREIGN-KEY", "OQ-ESIG-TAMPER", "OQ-AUDIT-TRAIL", "OQ-INPUT-REFUSED", "OQ-AUDIT-VERIFY",
          "OQ-TAMPER-REHASH", "OQ-TAMPER-TRUNCATE", "OQ-TAMPER-COLUMN", "OQ-TAMPER-EDIT"}


def _status(req: Requirement, results: dict[str, bool]) -> str:
    if req.kind == "n/a":
        return "not applicable"
    if req.kind == "P":
        return "customer procedure"
    if any(not results.get(e, True) for e in req.evidence):
        return "not met"
    if req.gap is not None:
        return "software gap"
    return "met" if req.kind == "S" else "met with procedure"


def matrix(checks: list[Check]) -> TraceabilityMatrix:
    results = {c.id: c.passed for c in checks}
    rows = [TraceRow(requirement=r.id, regulation=r.regulation, title=r.title, kind=r.kind,  # type: ignore[arg-type]
                     tests=list(r.tests), evidence=[e for e in r.evidence if e in results], procedure=r.procedure,
                     gap=r.gap, status=_status(r, results))  # type: ignore[arg-type]
            for r in REQUIREMENTS]
    return TraceabilityMatrix(sources=SOURCES, rows=rows,
                              not_met=[r.requirement for r in rows if r.status == "not met"],
                              gaps=[r.requirement for r in rows if r.status == "software gap"])
