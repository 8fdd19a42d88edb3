//! `/openapi.json`: an OpenAPI 3 document generated from the operation tables in `routes`, with
//! the contract's schemas and the error codes each operation can answer.
use super::routes::{self, Mount, Op};
use crate::auth::Access;
use crate::error::ApiError;
use actix_web::{HttpResponse, ResponseError};
use serde_json::{json, Map, Value};

pub async fn document() -> HttpResponse {
    HttpResponse::Ok().json(build())
}

fn status_of(code: &str) -> u16 {
    ApiError::every_kind()
        .iter()
        .find(|e| e.code() == code)
        .map(|e| e.status_code().as_u16())
        .unwrap_or(500)
}

/// The error codes an operation can answer: its own, and those of its kind.
fn error_codes(op: &Op) -> Vec<&'static str> {
    let mut codes: Vec<&'static str> = Vec::new();
    if op.access != Access::Public {
        codes.extend(["unauthorized", "rate_limited"]);
    }
    if op.access == Access::Admin {
        codes.push("forbidden");
    }
    if op.access == Access::Gateway {
        codes.extend(["forbidden", "invalid_tenant_id", "tenant_unavailable"]);
    }
    if op.mount == Mount::Tenant {
        codes.extend([
            "invalid_tenant_id",
            "tenant_unavailable",
            "forbidden",
            "feature_disabled",
        ]);
    }
    if op.body.is_some() {
        codes.extend([
            "invalid_request",
            "payload_too_large",
            "request_timeout",
            "unsupported_media_type",
        ]);
    }
    if !op.query.is_empty() || op.path.contains('{') {
        codes.push("invalid_request");
    }
    codes.extend(op.errors.iter().copied());
    codes.sort_unstable();
    codes.dedup();
    codes
}

fn schema_ref(name: &str) -> Value {
    json!({"$ref": format!("#/components/schemas/{name}")})
}

/// The response "schema" of an operation that answers `text/csv`.
pub const CSV: &str = "Csv";

fn operation(op: &Op, path: &str) -> Value {
    let mut params: Vec<Value> = Vec::new();
    for seg in path.split('/') {
        if let Some(name) = seg.strip_prefix('{').and_then(|s| s.strip_suffix('}')) {
            params.push(
                json!({"name": name, "in": "path", "required": true, "schema": {"type": "string"}}),
            );
        }
    }
    if op.mount == Mount::Tenant {
        params.push(json!({"name": "X-Tenant-ID", "in": "header", "required": false,
            "description": "Names the tenant (a UUID); otherwise the slug path, the key's tenant, or the default tenant",
            "schema": {"type": "string", "format": "uuid"}}));
    }
    for q in op.query {
        let schema = match *q {
            "limit" => json!({"type": "integer", "minimum": 1, "maximum": 1000, "default": 50}),
            "from" | "to" => json!({"type": "string", "format": "date-time"}),
            "status" if path.contains("/jobs") => json!({"type": "string",
                "enum": ["queued", "running", "retrying", "succeeded", "dead", "cancelled"]}),
            "status" if path.contains("/deliveries") => json!({"type": "string",
                "enum": ["pending", "succeeded", "failed", "exhausted"]}),
            "status" => json!({"type": "string", "enum": ["active", "inactive"]}),
            "severity" => {
                json!({"type": "string", "enum": ["debug", "info", "warning", "error", "critical"]})
            }
            "group_by" => {
                json!({"type": "string", "enum": ["day", "month", "model", "pipeline_stage", "agent_name", "user_id"]})
            }
            "format" => json!({"type": "string", "enum": ["json", "csv"]}),
            "period" => json!({"type": "string", "pattern": "^[0-9]{4}-[0-9]{2}$"}),
            _ => json!({"type": "string"}),
        };
        params.push(json!({"name": q, "in": "query", "required": false, "schema": schema}));
    }
    let mut responses = Map::new();
    let ok = match op.response {
        // `?format=csv` answers the same data as CSV.
        Some(s) if op.query.contains(&"format") => json!({"description": "success", "content": {
            "application/json": {"schema": schema_ref(s)},
            "text/csv": {"schema": {"type": "string"}}}}),
        // A streamed CSV answer: a header row, then one row per item (RFC 4180).
        Some(CSV) => {
            json!({"description": "success: CSV with a header row (RFC 4180)", "content": {"text/csv": {"schema": {"type": "string"}}}})
        }
        Some(s) => {
            json!({"description": "success", "content": {"application/json": {"schema": schema_ref(s)}}})
        }
        None if op.ok == 204 => json!({"description": "done, no body"}),
        None => {
            json!({"description": "success", "content": {"text/plain": {"schema": {"type": "string"}}}})
        }
    };
    responses.insert(op.ok.to_string(), ok);
    let mut by_status: std::collections::BTreeMap<u16, Vec<&str>> = Default::default();
    for code in error_codes(op) {
        by_status.entry(status_of(code)).or_default().push(code);
    }
    for (status, codes) in by_status {
        // The gateway answers in the provider's own error format, with the same codes.
        let schema = match op.mount {
            Mount::Gateway if path.starts_with("/v1/messages") => json!({"allOf": [
                schema_ref("AnthropicError"),
                {"properties": {"error": {"properties": {"type": {"enum": codes}}}}}]}),
            Mount::Gateway => json!({"allOf": [
                schema_ref("OpenAIError"),
                {"properties": {"error": {"properties": {"code": {"enum": codes}}}}}]}),
            _ => {
                json!({"allOf": [schema_ref("Error"), {"properties": {"error": {"enum": codes}}}]})
            }
        };
        responses.insert(
            status.to_string(),
            json!({
                "description": format!("error: {}", codes.join(", ")),
                "content": {"application/json": {"schema": schema}}
            }),
        );
    }
    let mut v = json!({
        "summary": op.summary,
        "description": format!("Access: {}.", op.access.describe()),
        "operationId": format!("{}_{}", op.method.as_str().to_lowercase(), path.trim_matches('/').replace(['/', '{', '}', '-', '.'], "_")),
        "parameters": params,
        "responses": responses,
    });
    if op.access != Access::Public {
        v["security"] = json!([{"bearer": []}]);
    }
    if let Some(b) = op.body {
        v["requestBody"] =
            json!({"required": true, "content": {"application/json": {"schema": schema_ref(b)}}});
    }
    v
}

/// Every (path, method) the server serves, as documented.
pub fn build() -> Value {
    let mut paths: Map<String, Value> = Map::new();
    for op in routes::all() {
        let full: Vec<String> = match op.mount {
            Mount::Root | Mount::Gateway => vec![op.path.to_string()],
            Mount::Api => vec![format!("/api{}", op.path)],
            Mount::Tenant => vec![
                format!("/api{}", op.path),
                format!("/api/tenant/{{slug}}{}", op.path),
            ],
        };
        for p in full {
            let entry = paths.entry(p.clone()).or_insert_with(|| json!({}));
            entry[op.method.as_str().to_lowercase()] = operation(&op, &p);
        }
    }
    json!({
        "openapi": "3.0.3",
        "info": {
            "title": "tenantry",
            "version": env!("CARGO_PKG_VERSION"),
            "description": "Multi-tenant control plane for AI applications. Money is USD, exact to 1e-9; timestamps are RFC 3339 UTC.",
            "license": {"name": "MIT"}
        },
        "paths": paths,
        "components": {
            "securitySchemes": {"bearer": {"type": "http", "scheme": "bearer", "description": "The admin token or a tenant key (tk_...)"}},
            "schemas": schemas(),
        }
    })
}

fn page(item: &str) -> Value {
    json!({"type": "object", "required": ["items", "next_cursor"], "properties": {
        "items": {"type": "array", "items": schema_ref(item)},
        "next_cursor": {"type": "string", "nullable": true}}})
}

/// OpenAPI 3.0 forbids an empty `required` list (it must have at least one name), so a
/// schema with no required property leaves the keyword out.
fn obj(required: &[&str], props: Value) -> Value {
    let mut schema = json!({"type": "object", "properties": props});
    if !required.is_empty() {
        schema["required"] = json!(required);
    }
    schema
}

fn closed(required: &[&str], props: Value) -> Value {
    let mut schema = obj(required, props);
    schema["additionalProperties"] = json!(false);
    schema
}

fn schemas() -> Value {
    let s = || json!({"type": "string"});
    let ts = || json!({"type": "string", "format": "date-time"});
    let money = || json!({"type": "number", "minimum": 0, "description": "USD, exact to 1e-9"});
    let int = || json!({"type": "integer", "minimum": 0});
    let statement_status = json!({"type": "string", "enum": ["open", "draft", "final"]});
    let nullable_ts = || json!({"type": "string", "format": "date-time", "nullable": true});
    let nullable_s = || json!({"type": "string", "nullable": true});
    let job_post = closed(
        &["payload"],
        json!({
        "queue": {"type": "string", "default": "default"}, "kind": s(),
        "payload": {"type": "object", "description": "Up to 256 KiB as compact JSON"},
        "priority": {"type": "integer", "minimum": 0, "maximum": 9, "default": 5},
        "idempotency_key": s(), "run_at": ts(),
        "max_attempts": {"type": "integer", "minimum": 1, "maximum": 100, "default": 25},
        "lease_seconds": {"type": "integer", "minimum": 5, "maximum": 3600, "default": 30}}),
    );
    let job = obj(
        &[
            "id",
            "tenant_id",
            "queue",
            "kind",
            "payload",
            "priority",
            "status",
            "attempts",
            "max_attempts",
            "run_at",
            "lease_expires_at",
            "idempotency_key",
            "last_error",
            "result",
            "created_at",
            "updated_at",
            "usage",
        ],
        json!({
        "id": s(), "tenant_id": s(), "queue": s(), "kind": nullable_s(), "payload": {"type": "object"},
        "priority": int(), "status": {"type": "string", "enum": ["queued", "running", "retrying", "succeeded", "dead", "cancelled"]},
        "attempts": int(), "max_attempts": int(), "run_at": ts(), "lease_expires_at": nullable_ts(),
        "idempotency_key": nullable_s(), "last_error": nullable_s(),
        "result": {"type": "object", "nullable": true}, "created_at": ts(), "updated_at": ts(),
        "usage": schema_ref("Totals")}),
    );
    let job_counts = obj(
        &[
            "queued",
            "running",
            "retrying",
            "succeeded",
            "dead",
            "cancelled",
        ],
        json!({
        "queued": int(), "running": int(), "retrying": int(), "succeeded": int(), "dead": int(), "cancelled": int()}),
    );
    let price_or_input = || {
        json!({"type": "number", "minimum": 0, "maximum": 1_000_000, "nullable": true,
               "description": "USD per million tokens, exact to 1e-9; null: the input price applies"})
    };
    let count = |what: &str| {
        json!({"type": "integer", "minimum": 0, "maximum": 1_000_000_000_000i64, "default": 0,
               "description": what})
    };
    let totals = obj(
        &[
            "events",
            "input_tokens",
            "output_tokens",
            "total_tokens",
            "cache_read_tokens",
            "cache_write_tokens",
            "reasoning_tokens",
            "estimated_cost_usd",
            "billed_cost_usd",
        ],
        json!({"events": int(), "input_tokens": int(), "output_tokens": int(), "total_tokens": int(),
               "cache_read_tokens": int(), "cache_write_tokens": int(), "reasoning_tokens": int(),
               "estimated_cost_usd": money(), "billed_cost_usd": money()}),
    );
    let limits_value = json!({"type": "object", "properties": {
        "daily_cost_usd": {"type": "number", "nullable": true, "minimum": 0},
        "monthly_cost_usd": {"type": "number", "nullable": true, "minimum": 0},
        "daily_tokens": {"type": "integer", "nullable": true, "minimum": 0},
        "monthly_tokens": {"type": "integer", "nullable": true, "minimum": 0}}});
    let settings_fields = json!({
        "execution_mode": {"type": "string", "enum": ["hosted", "byo_key"]},
        "default_model": {"type": "string", "nullable": true},
        "allowed_models": {"type": "array", "items": s(), "nullable": true, "maxItems": 500},
        "limits": limits_value,
        "warn_at_percent": {"type": "integer", "minimum": 1, "maximum": 100},
        "markup_percent": {"type": "number", "minimum": 0, "maximum": 1000},
        "rate_limit_per_minute": {"type": "integer", "minimum": 1, "maximum": 1000000, "nullable": true},
        "custom": {"type": "object", "additionalProperties": true,
            "description": "The application's own settings, any JSON object up to 64 KiB as compact JSON; versioned with the rest; PATCH replaces it whole"},
        "enforce_limits": {"type": "boolean", "description": "true: the gateway refuses calls (429 limit_exceeded) while a limit is exceeded"},
        "max_concurrent_calls": {"type": "integer", "minimum": 1, "maximum": 100000, "nullable": true,
            "description": "In-flight gateway calls; null: by plan (basic 4, pro 32, enterprise 256)"},
        "max_running_jobs": {"type": "integer", "minimum": 1, "maximum": 100000, "nullable": true,
            "description": "Running queue jobs; null: by plan (basic 2, pro 10, enterprise 50)"}});
    let mut settings = settings_fields.clone();
    settings["version"] = int();
    settings["provider_keys"] = json!({"type": "object", "additionalProperties":
        obj(&["masked", "updated_at"], json!({"masked": s(), "updated_at": ts()}))});
    settings["updated_at"] = ts();
    let usage_event = closed(
        &["model", "input_tokens", "output_tokens"],
        json!({
        "event_id": {"type": "string", "minLength": 1, "maxLength": 255},
        "timestamp": ts(), "model": s(), "input_tokens": int(), "output_tokens": int(),
        "cache_read_tokens": count("Of input_tokens, those read from the prompt cache; cache_read_tokens + cache_write_tokens <= input_tokens"),
        "cache_write_tokens": count("Of input_tokens, those written to the prompt cache"),
        "reasoning_tokens": count("Of output_tokens, those spent on reasoning; at most output_tokens"),
        "cost_usd": money(), "pipeline_stage": s(), "agent_name": s(), "job_id": s(), "user_id": s(),
        "duration_ms": int(), "metadata": {"type": "object"}}),
    );
    let check = obj(
        &["limit", "used", "max", "percent", "status"],
        json!({
        "limit": {"type": "string", "enum": ["daily_cost_usd", "monthly_cost_usd", "daily_tokens", "monthly_tokens"]},
        "used": {"type": "number"}, "max": {"type": "number"}, "percent": {"type": "number"},
        "status": {"type": "string", "enum": ["ok", "warning", "exceeded"]}}),
    );
    let mut codes: Vec<&str> = ApiError::every_kind().iter().map(|e| e.code()).collect();
    // Two kinds share `payload_too_large` (the /api bound and the gateway's).
    codes.sort_unstable();
    codes.dedup();
    json!({
        "Error": obj(&["error", "message"], json!({"error": {"type": "string", "enum": codes}, "message": s()})),
        "Object": {"type": "object"},
        "Status": obj(&["status"], json!({"status": s()})),
        "Features": obj(&["multi_tenant", "usage_tracking", "hosted_queue", "billing", "edition", "tenant_features"], json!({
            "multi_tenant": {"type": "boolean"}, "usage_tracking": {"type": "boolean"},
            "hosted_queue": {"type": "boolean"}, "billing": {"type": "boolean"},
            "edition": {"type": "string", "enum": ["oss", "hosted"]},
            "tenant_features": {"type": "array", "items": s()}})),
        "RequestStats": obj(&["tenants"], json!({"tenants": {"type": "object", "additionalProperties": obj(
            &["requests", "allowed", "denied", "avg_latency_ms", "p50_ms", "p95_ms", "p99_ms"],
            json!({"requests": int(), "allowed": int(), "denied": int(), "avg_latency_ms": {"type": "number"},
                   "p50_ms": {"type": "number"}, "p95_ms": {"type": "number"}, "p99_ms": {"type": "number"}}))}})),
        "Tenant": obj(&["id", "name", "slug", "plan", "status", "created_at", "updated_at", "deactivated_at"], json!({
            "id": {"type": "string", "format": "uuid"}, "name": s(),
            "slug": {"type": "string", "pattern": "^[a-z0-9-]{3,63}$"},
            "plan": {"type": "string", "enum": ["basic", "pro", "enterprise"]},
            "status": {"type": "string", "enum": ["active", "inactive"]},
            "created_at": ts(), "updated_at": ts(), "deactivated_at": {"type": "string", "format": "date-time", "nullable": true}})),
        "TenantCreate": closed(&["name"], json!({"name": s(), "slug": s(),
            "plan": {"type": "string", "enum": ["basic", "pro", "enterprise"]},
            "template": {"type": "string", "enum": ["trial", "startup", "enterprise"]},
            "settings": schema_ref("SettingsPatch")})),
        "TenantPatch": closed(&[], json!({"name": s(), "slug": s(), "plan": {"type": "string", "enum": ["basic", "pro", "enterprise"]}})),
        "TenantPage": page("Tenant"),
        "Member": obj(&["user_id", "role", "created_at"], json!({"user_id": s(),
            "role": {"type": "string", "enum": ["owner", "member", "viewer"]}, "created_at": ts()})),
        "MemberPut": closed(&["role"], json!({"role": {"type": "string", "enum": ["owner", "member", "viewer"]}})),
        "MemberPage": page("Member"),
        "Key": obj(&["id", "name", "role", "user_id", "prefix", "created_at", "expires_at"], json!({
            "id": {"type": "string", "format": "uuid"}, "name": s(),
            "role": {"type": "string", "enum": ["owner", "member", "viewer", "service"]},
            "user_id": {"type": "string", "nullable": true}, "prefix": s(), "created_at": ts(),
            "expires_at": {"type": "string", "format": "date-time", "nullable": true},
            "revoked_at": {"type": "string", "format": "date-time", "nullable": true}})),
        "KeyCreated": {"allOf": [schema_ref("Key"), obj(&["key"], json!({"key": {"type": "string", "pattern": "^tk_"}}))]},
        "KeyCreate": closed(&["name", "role"], json!({"name": s(),
            "role": {"type": "string", "enum": ["owner", "member", "viewer", "service"]},
            "user_id": s(), "expires_at": ts()})),
        "KeyPage": page("Key"),
        "Webhook": obj(&["id", "scope", "url", "event_types", "description", "format", "enabled", "disabled_reason", "created_at"], json!({
            "id": {"type": "string", "format": "uuid"},
            "scope": {"type": "string", "enum": ["tenant", "instance"]},
            "url": {"type": "string", "format": "uri"},
            "event_types": {"type": "array", "items": s(), "nullable": true,
                            "description": "exact types and `prefix.*` wildcards; null: every event"},
            "description": {"type": "string", "nullable": true},
            "format": {"type": "string", "enum": ["standard", "slack"]},
            "enabled": {"type": "boolean"},
            "disabled_reason": {"type": "string", "nullable": true, "description": "manual, gone or failing"},
            "created_at": ts()})),
        "WebhookCreated": {"allOf": [schema_ref("Webhook"), obj(&["secret"], json!({"secret": {"type": "string", "pattern": "^whsec_"}}))]},
        "WebhookCreate": closed(&["url"], json!({"url": {"type": "string", "format": "uri"},
            "event_types": {"type": "array", "items": s(), "nullable": true},
            "description": s(), "format": {"type": "string", "enum": ["standard", "slack"]},
            "scope": {"type": "string", "enum": ["tenant", "instance"], "description": "instance: admin token only"}})),
        "WebhookPatch": closed(&[], json!({"url": {"type": "string", "format": "uri"},
            "event_types": {"type": "array", "items": s(), "nullable": true},
            "description": {"type": "string", "nullable": true}, "enabled": {"type": "boolean"}})),
        "WebhookPage": page("Webhook"),
        "WebhookSecret": obj(&["secret"], json!({"secret": {"type": "string", "pattern": "^whsec_"}})),
        "WebhookTest": obj(&["event_id"], json!({"event_id": {"type": "string", "format": "uuid"}})),
        "WebhookDelivery": obj(&["id", "event_id", "event_type", "status", "attempts", "last_status", "last_error", "next_attempt_at", "created_at"], json!({
            "id": {"type": "string", "format": "uuid"}, "event_id": s(), "event_type": s(),
            "status": {"type": "string", "enum": ["pending", "succeeded", "failed", "exhausted"]},
            "attempts": int(), "last_status": {"type": "integer", "nullable": true},
            "last_error": {"type": "string", "nullable": true},
            "next_attempt_at": {"type": "string", "format": "date-time", "nullable": true},
            "created_at": ts()})),
        "WebhookDeliveryPage": page("WebhookDelivery"),
        "Settings": obj(&["version", "execution_mode", "default_model", "allowed_models", "limits", "warn_at_percent", "markup_percent", "rate_limit_per_minute", "custom", "enforce_limits", "max_concurrent_calls", "max_running_jobs", "provider_keys", "updated_at"], settings),
        "SettingsPatch": {"type": "object", "additionalProperties": false, "properties": settings_fields},
        "HistoryEntry": obj(&["version", "settings", "changed_by", "changed_at"], json!({
            "version": int(), "settings": schema_ref("SettingsPatch"), "changed_by": s(), "changed_at": ts()})),
        "HistoryPage": page("HistoryEntry"),
        "Rollback": closed(&["version"], json!({"version": {"type": "integer", "minimum": 1}})),
        "ProviderKeyPut": closed(&["api_key"], json!({"api_key": {"type": "string", "minLength": 8, "maxLength": 4096}})),
        "Credential": obj(&["provider", "api_key", "source"], json!({"provider": s(), "api_key": s(),
            "source": {"type": "string", "enum": ["byo_key", "hosted"]}})),
        "Event": obj(&["id", "tenant_id", "category", "event_type", "severity", "message", "data", "created_at"], json!({
            "id": s(), "tenant_id": s(), "category": s(), "event_type": s(),
            "severity": {"type": "string", "enum": ["debug", "info", "warning", "error", "critical"]},
            "message": s(), "data": {"type": "object"}, "created_at": ts()})),
        "EventPage": page("Event"),
        "JobPost": {"oneOf": [job_post.clone(), closed(&["jobs"], json!({"jobs": {"type": "array", "minItems": 1, "maxItems": 1000, "items": job_post}}))]},
        "Job": job.clone(),
        "JobPage": page("Job"),
        "LeasedJobs": obj(&["jobs"], json!({"jobs": {"type": "array", "items": {"allOf": [job, obj(&["lease_token"], json!({"lease_token": s()}))]}}})),
        "JobCounts": job_counts.clone(),
        "QueueOverview": obj(&["tenants"], json!({"tenants": {"type": "array", "items": obj(&["tenant_id", "slug", "name", "plan", "counts"], json!({
            "tenant_id": s(), "slug": s(), "name": s(), "plan": s(), "counts": job_counts}))}})),
        "LeaseRequest": {"type": "object", "additionalProperties": false, "properties": {
            "queues": {"type": "array", "minItems": 1, "maxItems": 100, "items": s()},
            "max_jobs": {"type": "integer", "minimum": 1, "maximum": 100, "default": 1},
            "wait_seconds": {"type": "integer", "minimum": 0, "maximum": 30, "default": 0}}},
        "Heartbeat": closed(&["lease_token"], json!({"lease_token": s(), "lease_seconds": {"type": "integer", "minimum": 5, "maximum": 3600}})),
        "Complete": closed(&["lease_token"], json!({"lease_token": s(), "result": {"type": "object", "description": "Up to 64 KiB as compact JSON"}})),
        "Fail": closed(&["lease_token", "error"], json!({"lease_token": s(), "error": {"type": "string", "minLength": 1, "maxLength": 4000}, "retry": {"type": "boolean", "default": true}})),
        "StatementLine": obj(&["model", "execution_mode", "events", "input_tokens", "output_tokens", "cache_read_tokens", "cache_write_tokens", "reasoning_tokens", "estimated_cost_usd", "billed_cost_usd"], json!({
            "model": s(), "execution_mode": {"type": "string", "enum": ["hosted", "byo_key"]},
            "events": int(), "input_tokens": int(), "output_tokens": int(), "cache_read_tokens": int(),
            "cache_write_tokens": int(), "reasoning_tokens": int(),
            "estimated_cost_usd": money(), "billed_cost_usd": money()})),
        "Statement": obj(&["tenant_id", "period", "from", "to", "status", "currency", "lines", "events", "input_tokens", "output_tokens", "cache_read_tokens", "cache_write_tokens", "reasoning_tokens", "estimated_cost_usd", "billed_cost_usd", "amount_due_usd", "finalized_at"], json!({
            "tenant_id": s(), "period": {"type": "string", "pattern": "^[0-9]{4}-[0-9]{2}$"},
            "from": ts(), "to": ts(), "status": statement_status.clone(), "currency": {"type": "string", "enum": ["USD"]},
            "lines": {"type": "array", "items": schema_ref("StatementLine")},
            "events": int(), "input_tokens": int(), "output_tokens": int(), "cache_read_tokens": int(),
            "cache_write_tokens": int(), "reasoning_tokens": int(),
            "estimated_cost_usd": money(), "billed_cost_usd": money(),
            "amount_due_usd": {"type": "number", "minimum": 0, "description": "billed_cost_usd rounded half to even to cents"},
            "finalized_at": {"type": "string", "format": "date-time", "nullable": true}})),
        "StatementSummary": obj(&["period", "status", "events", "billed_cost_usd", "amount_due_usd", "finalized_at"], json!({
            "period": s(), "status": statement_status.clone(), "events": int(),
            "billed_cost_usd": money(), "amount_due_usd": money(),
            "finalized_at": {"type": "string", "format": "date-time", "nullable": true}})),
        "StatementPage": page("StatementSummary"),
        "BillingReportRow": obj(&["tenant_id", "slug", "name", "plan", "events", "billed_cost_usd", "amount_due_usd", "status"], json!({
            "tenant_id": s(), "slug": s(), "name": s(), "plan": s(), "events": int(),
            "billed_cost_usd": money(), "amount_due_usd": money(), "status": statement_status.clone()})),
        "BillingReport": obj(&["period", "from", "to", "status", "tenants", "totals"], json!({
            "period": s(), "from": ts(), "to": ts(), "status": statement_status,
            "tenants": {"type": "array", "items": schema_ref("BillingReportRow")},
            "totals": obj(&["tenants", "events", "billed_cost_usd", "amount_due_usd"], json!({
                "tenants": int(), "events": int(), "billed_cost_usd": money(), "amount_due_usd": money()}))})),
        "EventPost": closed(&["category", "event_type", "severity", "message"], json!({
            "category": {"type": "string", "enum": ["user.interaction", "ai.operations", "data.sync", "system"],
                "description": "security and billing are tenantry's own"},
            "event_type": {"type": "string", "pattern": "^[a-z0-9_.]{1,100}$"},
            "severity": {"type": "string", "enum": ["debug", "info", "warning", "error", "critical"]},
            "message": {"type": "string", "minLength": 1, "maxLength": 1000, "description": "No control characters"},
            "data": {"type": "object", "additionalProperties": true, "description": "Up to 16 KiB as compact JSON; default {}"}})),
        "UsageEvent": usage_event,
        "UsageIngest": {"oneOf": [schema_ref("UsageEvent"), closed(&["events"], json!({
            "events": {"type": "array", "minItems": 1, "maxItems": 1000, "items": schema_ref("UsageEvent")}}))]},
        "IngestResult": obj(&["accepted", "duplicates", "events", "limits"], json!({
            "accepted": int(), "duplicates": int(),
            "events": {"type": "array", "items": obj(&["id", "event_id", "estimated_cost_usd", "billed_cost_usd"], json!({
                "id": s(), "event_id": {"type": "string", "nullable": true}, "estimated_cost_usd": money(),
                "billed_cost_usd": money(), "duplicate": {"type": "boolean"}}))},
            "limits": schema_ref("LimitsStatus")})),
        "RecordedEvent": obj(&["id", "tenant_id", "execution_mode", "estimated_cost_usd", "billed_cost_usd"], json!({
            "id": s(), "tenant_id": s(), "event_id": {"type": "string", "nullable": true}, "timestamp": ts(),
            "model": s(), "input_tokens": int(), "output_tokens": int(), "total_tokens": int(),
            "cache_read_tokens": int(), "cache_write_tokens": int(), "reasoning_tokens": int(),
            "estimated_cost_usd": money(), "billed_cost_usd": money(),
            "input_usd_per_million": {"type": "number", "nullable": true},
            "output_usd_per_million": {"type": "number", "nullable": true},
            "cache_read_usd_per_million": {"type": "number", "nullable": true,
                "description": "The prices the event was charged (a cache price is the input price when the model has none); null when the cost did not come from the price table"},
            "cache_write_usd_per_million": {"type": "number", "nullable": true},
            "execution_mode": {"type": "string", "enum": ["hosted", "byo_key"]}, "cost_source": s()})),
        "UsageEventPage": page("RecordedEvent"),
        "Totals": totals,
        "UsageStats": obj(&["from", "to", "totals", "groups"], json!({"from": ts(), "to": ts(),
            "totals": schema_ref("Totals"),
            "groups": {"type": "array", "items": {"allOf": [schema_ref("Totals"), obj(&["key"], json!({"key": {"type": "string", "nullable": true}}))]}}})),
        "LimitsStatus": obj(&["status", "checks", "warnings", "errors"], json!({
            "status": {"type": "string", "enum": ["ok", "warning", "exceeded"]},
            "checks": {"type": "array", "items": check},
            "warnings": {"type": "array", "items": s()}, "errors": {"type": "array", "items": s()}})),
        "UsageSummary": obj(&["today", "month", "limits", "top_models", "top_agents"], json!({
            "today": schema_ref("Totals"), "month": schema_ref("Totals"), "limits": schema_ref("LimitsStatus"),
            "top_models": {"type": "array", "items": schema_ref("Totals")},
            "top_agents": {"type": "array", "items": schema_ref("Totals")}})),
        "AgentsUsage": obj(&["agents", "most_used_agent"], json!({
            "agents": {"type": "array", "items": obj(&["agent_name", "events", "total_tokens", "estimated_cost_usd"], json!({
                "agent_name": s(), "events": int(), "total_tokens": int(), "estimated_cost_usd": money()}))},
            "most_used_agent": {"type": "string", "nullable": true}})),
        "Price": obj(&["model", "input_usd_per_million", "output_usd_per_million",
                       "cache_read_usd_per_million", "cache_write_usd_per_million"], json!({
            "model": s(), "input_usd_per_million": money(), "output_usd_per_million": money(),
            "cache_read_usd_per_million": price_or_input(), "cache_write_usd_per_million": price_or_input()})),
        "PriceList": obj(&["items"], json!({"items": {"type": "array", "items": schema_ref("Price")}})),
        "GatewayRequest": {"type": "object", "required": ["model"], "additionalProperties": true,
            "description": "The provider's own request body (OpenAI's or Anthropic's), passed upstream unchanged but for a `provider/` prefix on `model` and, on a streamed chat, `stream_options.include_usage`",
            "properties": {"model": {"type": "string", "minLength": 1, "maxLength": 255}, "stream": {"type": "boolean"}}},
        "GatewayAnswer": {"type": "object", "additionalProperties": true,
            "description": "The provider's answer, unchanged; a streamed call answers text/event-stream, relayed chunk by chunk"},
        "ModelList": obj(&["object", "data"], json!({"object": {"type": "string", "enum": ["list"]},
            "data": {"type": "array", "items": obj(&["id", "object", "owned_by"], json!({
                "id": s(), "object": {"type": "string", "enum": ["model"]}, "owned_by": s()}))}})),
        "GatewayCalls": obj(&["in_flight", "items"], json!({"in_flight": int(),
            "items": {"type": "array", "items": obj(&["at", "path", "model", "provider", "stream", "status", "input_tokens", "output_tokens", "duration_ms"], json!({
                "at": ts(), "path": s(), "model": s(), "provider": s(), "stream": {"type": "boolean"},
                "status": {"type": "integer", "description": "The provider's status; 0 when it never answered"},
                "error": {"type": "string", "nullable": true}, "input_tokens": int(), "output_tokens": int(),
                "billed_cost_usd": {"type": "number", "nullable": true}, "duration_ms": int(),
                "client_disconnected": {"type": "boolean"}, "usage_missing": {"type": "boolean"}}))}})),
        "OpenAIError": obj(&["error"], json!({"error": obj(&["message", "type", "code"], json!({
            "message": s(), "type": s(), "code": s(), "param": {"type": "string", "nullable": true}}))})),
        "AnthropicError": obj(&["type", "error"], json!({"type": {"type": "string", "enum": ["error"]},
            "error": obj(&["type", "message"], json!({"type": s(), "message": s()}))})),
        "PricePut": closed(&["input_usd_per_million", "output_usd_per_million"], json!({
            "input_usd_per_million": money(), "output_usd_per_million": money(),
            "cache_read_usd_per_million": price_or_input(), "cache_write_usd_per_million": price_or_input()})),
    })
}
