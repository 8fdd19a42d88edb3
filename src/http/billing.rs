//! `/api/billing/...`: a tenant's statements (viewer) and the operator's report (admin), as JSON
//! or, with `?format=csv`, as CSV (RFC 4180, written by the `csv` crate).
use super::extract::AdminCaller;
use super::routes::{Mount, Op};
use crate::auth::Access;
use crate::billing::period::Period;
use crate::billing::statement::{Report, Statement};
use crate::error::ApiError;
use crate::pagination::PageRequest;
use crate::state::AppState;
use crate::tenancy::TenantCtx;
use crate::usage::money::Nanousd;
use actix_web::http::header::{ContentDisposition, DispositionParam, DispositionType};
use actix_web::http::Method;
use actix_web::{web, HttpResponse};
use serde::Deserialize;

pub fn ops() -> Vec<Op> {
    vec![
        Op::new(Method::GET, "/billing/statements", Mount::Tenant, || web::route().to(list))
            .doc("The tenant's statements, one per month with usage, newest first", Access::Viewer)
            .query(&["limit", "cursor"])
            .ok(200, Some("StatementPage"))
            .errors(&["feature_disabled"]),
        Op::new(Method::GET, "/billing/statements/{period}", Mount::Tenant, || web::route().to(get))
            .doc("The tenant's statement for a UTC month (YYYY-MM); ?format=csv for CSV", Access::Viewer)
            .query(&["format"])
            .ok(200, Some("Statement"))
            .errors(&["feature_disabled"]),
        Op::new(Method::GET, "/billing/report", Mount::Api, || web::route().to(report))
            .doc("Every tenant's billed cost and amount due for a month (default: the current one); ?format=csv for CSV", Access::Admin)
            .query(&["period", "format"])
            .ok(200, Some("BillingReport"))
            .errors(&["feature_disabled"]),
    ]
}

#[derive(Deserialize)]
#[serde(deny_unknown_fields)]
struct ListQuery {
    limit: Option<u32>,
    cursor: Option<String>,
}

#[derive(Deserialize)]
#[serde(deny_unknown_fields)]
struct FormatQuery {
    format: Option<String>,
    period: Option<String>,
}

#[derive(Deserialize)]
struct PeriodPath {
    period: String,
}

/// `true` for CSV; JSON when absent.
fn csv_wanted(format: Option<&str>) -> Result<bool, ApiError> {
    match format {
        None | Some("json") => Ok(false),
        Some("csv") => Ok(true),
        Some(_) => Err(ApiError::InvalidRequest(
            "format must be json or csv".into(),
        )),
    }
}

async fn list(
    ctx: TenantCtx,
    st: web::Data<AppState>,
    q: web::Query<ListQuery>,
) -> Result<HttpResponse, ApiError> {
    let page = PageRequest::parse(q.limit, q.cursor.as_deref())?;
    Ok(HttpResponse::Ok().json(st.billing.statements(&ctx, page).await?))
}

async fn get(
    ctx: TenantCtx,
    st: web::Data<AppState>,
    p: web::Path<PeriodPath>,
    q: web::Query<FormatQuery>,
) -> Result<HttpResponse, ApiError> {
    if q.period.is_some() {
        return Err(ApiError::InvalidRequest(
            "the period is in the path, not the query".into(),
        ));
    }
    let csv = csv_wanted(q.format.as_deref())?;
    let period = Period::parse(&p.period)?;
    let s = st.billing.statement(&ctx, period).await?;
    if !csv {
        return Ok(HttpResponse::Ok().json(s));
    }
    let name = format!("statement-{}-{}.csv", s.period, s.tenant_id);
    Ok(csv_response(statement_csv(&s)?, name))
}

async fn report(
    AdminCaller(admin): AdminCaller,
    st: web::Data<AppState>,
    q: web::Query<FormatQuery>,
) -> Result<HttpResponse, ApiError> {
    let csv = csv_wanted(q.format.as_deref())?;
    let period = match q.period.as_deref() {
        Some(p) => Period::parse(p)?,
        None => st.billing.current_period(),
    };
    let r = st.billing.report(&admin, period).await?;
    if !csv {
        return Ok(HttpResponse::Ok().json(r));
    }
    let name = format!("billing-report-{}.csv", r.period);
    Ok(csv_response(report_csv(&r)?, name))
}

fn csv_response(body: Vec<u8>, filename: String) -> HttpResponse {
    HttpResponse::Ok()
        .content_type("text/csv; charset=utf-8")
        .insert_header(ContentDisposition {
            disposition: DispositionType::Attachment,
            parameters: vec![DispositionParam::Filename(filename)],
        })
        .body(body)
}

fn usd(n: Nanousd) -> String {
    n.to_json_number().to_string()
}

fn csv_error(e: csv::Error) -> ApiError {
    ApiError::internal(format!("writing CSV: {e}"))
}

/// One row per line (`row_type` `line`), then one `total` row with the amount due; every row
/// has the same columns, so a spreadsheet or CSV reader takes it as one table.
pub fn statement_csv(s: &Statement) -> Result<Vec<u8>, ApiError> {
    let mut w = csv::Writer::from_writer(Vec::new());
    w.write_record([
        "row_type",
        "tenant_id",
        "period",
        "status",
        "model",
        "execution_mode",
        "events",
        "input_tokens",
        "output_tokens",
        "cache_read_tokens",
        "cache_write_tokens",
        "reasoning_tokens",
        "estimated_cost_usd",
        "billed_cost_usd",
        "amount_due_usd",
    ])
    .map_err(csv_error)?;
    let status = s.status.as_str();
    for l in &s.lines {
        w.write_record([
            "line",
            &s.tenant_id,
            &s.period,
            status,
            &l.model,
            l.execution_mode,
            &l.events.to_string(),
            &l.input_tokens.to_string(),
            &l.output_tokens.to_string(),
            &l.cache_read_tokens.to_string(),
            &l.cache_write_tokens.to_string(),
            &l.reasoning_tokens.to_string(),
            &usd(l.estimated_cost_usd),
            &usd(l.billed_cost_usd),
            "",
        ])
        .map_err(csv_error)?;
    }
    w.write_record([
        "total",
        &s.tenant_id,
        &s.period,
        status,
        "",
        "",
        &s.events.to_string(),
        &s.input_tokens.to_string(),
        &s.output_tokens.to_string(),
        &s.cache_read_tokens.to_string(),
        &s.cache_write_tokens.to_string(),
        &s.reasoning_tokens.to_string(),
        &usd(s.estimated_cost_usd),
        &usd(s.billed_cost_usd),
        &usd(s.amount_due_usd),
    ])
    .map_err(csv_error)?;
    w.into_inner()
        .map_err(|e| ApiError::internal(e.to_string()))
}

/// One row per tenant with usage in the period.
pub fn report_csv(r: &Report) -> Result<Vec<u8>, ApiError> {
    let mut w = csv::Writer::from_writer(Vec::new());
    w.write_record([
        "period",
        "tenant_id",
        "slug",
        "name",
        "plan",
        "status",
        "events",
        "billed_cost_usd",
        "amount_due_usd",
    ])
    .map_err(csv_error)?;
    for t in &r.tenants {
        w.write_record([
            &r.period,
            &t.tenant_id,
            &t.slug,
            &t.name,
            &t.plan,
            t.status.as_str(),
            &t.events.to_string(),
            &usd(t.billed_cost_usd),
            &usd(t.amount_due_usd),
        ])
        .map_err(csv_error)?;
    }
    w.into_inner()
        .map_err(|e| ApiError::internal(e.to_string()))
}
