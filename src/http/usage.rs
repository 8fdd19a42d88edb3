//! `/api/usage/...` and `/api/agents/...`: ingest (member or service), reads (viewer), agent
//! preferences (member writes).
use super::events::time_param;
use super::openapi::CSV;
use super::routes::{Mount, Op};
use super::usage_views::{AgentsView, LimitsView, StatsView, StoredEventView, SummaryView};
use crate::auth::Access;
use crate::error::ApiError;
use crate::limits::Level;
use crate::pagination::PageRequest;
use crate::state::AppState;
use crate::tenancy::TenantCtx;
use crate::usage::export::Export;
use crate::usage::money::Nanousd;
use crate::usage::reads::{Days, GroupBy, UsageFilter};
use crate::usage::writer::Recorded;
use actix_web::http::header::{HeaderName, HeaderValue};
use actix_web::http::Method;
use actix_web::{web, HttpResponse};
use bytes::Bytes;
use serde::{Deserialize, Serialize};
use serde_json::Value;

pub const LIMIT_STATUS: HeaderName = HeaderName::from_static("x-usage-limit-status");

pub fn ops() -> Vec<Op> {
    vec![
        Op::new(Method::POST, "/usage/events", Mount::Tenant, || web::route().to(ingest))
            .doc("Record one usage event or a batch of up to 1000, all or nothing; answered once durable", Access::MemberOrService)
            .body("UsageIngest")
            .ok(201, Some("IngestResult")),
        Op::new(Method::GET, "/usage/events", Mount::Tenant, || web::route().to(list))
            .doc("Recorded usage events, newest first", Access::Viewer)
            .query(&["from", "to", "model", "pipeline_stage", "agent_name", "user_id", "job_id", "limit", "cursor"])
            .ok(200, Some("UsageEventPage")),
        Op::new(Method::GET, "/usage/events/export", Mount::Tenant, || web::route().to(export))
            .doc("Every matching usage event as CSV, oldest first, streamed", Access::Viewer)
            .query(&["from", "to", "model", "pipeline_stage", "agent_name", "user_id", "job_id"])
            .ok(200, Some(CSV)),
        Op::new(Method::GET, "/usage/stats", Mount::Tenant, || web::route().to(stats))
            .doc("Totals and groups over whole UTC days", Access::Viewer)
            .query(&["from", "to", "group_by"])
            .ok(200, Some("UsageStats")),
        Op::new(Method::GET, "/usage/limits", Mount::Tenant, || web::route().to(limits))
            .doc("Status of each soft limit that is set", Access::Viewer)
            .ok(200, Some("LimitsStatus")),
        Op::new(Method::GET, "/usage/summary", Mount::Tenant, || web::route().to(summary))
            .doc("Today, this month, limits, top models and agents", Access::Viewer)
            .ok(200, Some("UsageSummary")),
        Op::new(Method::GET, "/agents/usage", Mount::Tenant, || web::route().to(agents))
            .doc("Usage by agent, most used first", Access::Viewer)
            .ok(200, Some("AgentsUsage")),
        Op::new(Method::GET, "/agents/{agent_name}/preferences", Mount::Tenant, || web::route().to(get_preferences))
            .doc("An agent's stored preferences ({} when unset)", Access::Viewer)
            .ok(200, Some("Object")),
        Op::new(Method::PUT, "/agents/{agent_name}/preferences", Mount::Tenant, || web::route().to(put_preferences))
            .doc("Store an agent's preferences: any JSON object up to 64 KiB", Access::Member)
            .body("Object")
            .ok(200, Some("Object")),
    ]
}

fn with_status(mut res: HttpResponse, level: Level) -> HttpResponse {
    res.headers_mut()
        .insert(LIMIT_STATUS, HeaderValue::from_static(level.as_str()));
    res
}

async fn ingest(
    ctx: TenantCtx,
    st: web::Data<AppState>,
    body: web::Json<Value>,
) -> Result<HttpResponse, ApiError> {
    let o = st.usage.ingest(&ctx, body.into_inner()).await?;
    let level = o.limits.level;
    let res = HttpResponse::Created().json(IngestResult {
        accepted: o.accepted,
        duplicates: o.duplicates,
        events: o.events.iter().map(RecordedJson::from).collect(),
        limits: (&o.limits).into(),
    });
    Ok(with_status(res, level))
}

/// The contract's ingest answer, serialized straight from borrowed fields: a batch answer holds
/// a thousand of these, and going through `json!` cost a map and its keys for each.
#[derive(Serialize)]
struct IngestResult<'a> {
    accepted: usize,
    duplicates: usize,
    events: Vec<RecordedJson<'a>>,
    limits: LimitsView,
}

#[derive(Serialize)]
struct RecordedJson<'a> {
    id: &'a str,
    event_id: Option<&'a str>,
    estimated_cost_usd: Nanousd,
    billed_cost_usd: Nanousd,
    duplicate: bool,
}

impl<'a> From<&'a Recorded> for RecordedJson<'a> {
    fn from(e: &'a Recorded) -> Self {
        RecordedJson {
            id: &e.id,
            event_id: e.event_id.as_deref(),
            estimated_cost_usd: e.estimated,
            billed_cost_usd: e.billed,
            duplicate: e.duplicate,
        }
    }
}

#[derive(Deserialize)]
#[serde(deny_unknown_fields)]
struct ListQuery {
    from: Option<String>,
    to: Option<String>,
    model: Option<String>,
    pipeline_stage: Option<String>,
    agent_name: Option<String>,
    user_id: Option<String>,
    job_id: Option<String>,
    limit: Option<u32>,
    cursor: Option<String>,
}

async fn list(
    ctx: TenantCtx,
    st: web::Data<AppState>,
    q: web::Query<ListQuery>,
) -> Result<HttpResponse, ApiError> {
    let q = q.into_inner();
    let filter = UsageFilter {
        from: time_param(q.from.as_deref(), "from")?,
        to: time_param(q.to.as_deref(), "to")?,
        model: q.model,
        pipeline_stage: q.pipeline_stage,
        agent_name: q.agent_name,
        user_id: q.user_id,
        job_id: q.job_id,
    };
    let page = PageRequest::parse(q.limit, q.cursor.as_deref())?;
    let page = st.usage.list_events(&ctx, filter, page).await?;
    Ok(HttpResponse::Ok().json(page.map(StoredEventView::from)))
}

#[derive(Deserialize)]
#[serde(deny_unknown_fields)]
struct ExportQuery {
    from: Option<String>,
    to: Option<String>,
    model: Option<String>,
    pipeline_stage: Option<String>,
    agent_name: Option<String>,
    user_id: Option<String>,
    job_id: Option<String>,
}

/// Streams the export: the first chunk is read before the answer starts (so a failure there
/// is a proper error), then a task reads ahead at most `AHEAD` chunks of what the client has
/// taken, so a slow client holds a few hundred KiB, not the export.
async fn export(
    ctx: TenantCtx,
    st: web::Data<AppState>,
    q: web::Query<ExportQuery>,
) -> Result<HttpResponse, ApiError> {
    const AHEAD: usize = 2;
    let q = q.into_inner();
    let filter = UsageFilter {
        from: time_param(q.from.as_deref(), "from")?,
        to: time_param(q.to.as_deref(), "to")?,
        model: q.model,
        pipeline_stage: q.pipeline_stage,
        agent_name: q.agent_name,
        user_id: q.user_id,
        job_id: q.job_id,
    };
    let mut export = st.usage.export(&ctx, filter)?;
    let mut first = Export::header();
    if let Some(rows) = export.next_chunk().await? {
        first.extend_from_slice(&rows);
    }
    let (tx, rx) = tokio::sync::mpsc::channel::<Result<Bytes, ApiError>>(AHEAD);
    actix_web::rt::spawn(async move {
        loop {
            let next = export.next_chunk().await;
            let item = match next {
                Ok(Some(rows)) => Ok(Bytes::from(rows)),
                Ok(None) => return,
                // The client sees the body cut short, never a CSV that looks complete.
                Err(e) => {
                    tracing::warn!(error = %e, "usage export stopped");
                    Err(e)
                }
            };
            let failed = item.is_err();
            // A client gone drops the receiver: stop reading.
            if tx.send(item).await.is_err() || failed {
                return;
            }
        }
    });
    let body = Chunks {
        first: Some(Bytes::from(first)),
        rest: rx,
    };
    Ok(HttpResponse::Ok()
        .content_type("text/csv; charset=utf-8")
        .insert_header((
            "Content-Disposition",
            "attachment; filename=\"usage-events.csv\"",
        ))
        .streaming(body))
}

/// The export's body: the first chunk, then whatever the reading task sends.
struct Chunks {
    first: Option<Bytes>,
    rest: tokio::sync::mpsc::Receiver<Result<Bytes, ApiError>>,
}

impl futures_core::Stream for Chunks {
    type Item = Result<Bytes, ApiError>;

    fn poll_next(
        mut self: std::pin::Pin<&mut Self>,
        cx: &mut std::task::Context<'_>,
    ) -> std::task::Poll<Option<Self::Item>> {
        if let Some(b) = self.first.take() {
            return std::task::Poll::Ready(Some(Ok(b)));
        }
        self.rest.poll_recv(cx)
    }
}

#[derive(Deserialize)]
#[serde(deny_unknown_fields)]
struct StatsQuery {
    from: Option<String>,
    to: Option<String>,
    group_by: Option<String>,
}

async fn stats(
    ctx: TenantCtx,
    st: web::Data<AppState>,
    q: web::Query<StatsQuery>,
) -> Result<HttpResponse, ApiError> {
    let days = Days::parse(
        time_param(q.from.as_deref(), "from")?,
        time_param(q.to.as_deref(), "to")?,
        st.now(),
    )?;
    let group = q.group_by.as_deref().map(GroupBy::parse).transpose()?;
    let stats = st.usage.stats(&ctx, days, group).await?;
    Ok(HttpResponse::Ok().json(StatsView::from(stats)))
}

async fn limits(ctx: TenantCtx, st: web::Data<AppState>) -> Result<HttpResponse, ApiError> {
    let s = st.usage.limits_status(&ctx).await?;
    let res = HttpResponse::Ok().json(LimitsView::from(&s));
    Ok(with_status(res, s.level))
}

async fn summary(ctx: TenantCtx, st: web::Data<AppState>) -> Result<HttpResponse, ApiError> {
    let s = st.usage.summary(&ctx).await?;
    let level = s.limits.level;
    Ok(with_status(
        HttpResponse::Ok().json(SummaryView::from(s)),
        level,
    ))
}

async fn agents(ctx: TenantCtx, st: web::Data<AppState>) -> Result<HttpResponse, ApiError> {
    Ok(HttpResponse::Ok().json(AgentsView::from(st.usage.agents(&ctx).await?)))
}

#[derive(Deserialize)]
struct AgentPath {
    agent_name: String,
}

fn agent_name(p: &AgentPath) -> Result<String, ApiError> {
    let n = p.agent_name.chars().count();
    if n == 0 || n > 255 || p.agent_name.chars().any(char::is_control) {
        return Err(ApiError::InvalidRequest(
            "agent_name must be 1 to 255 printable characters".into(),
        ));
    }
    Ok(p.agent_name.clone())
}

async fn get_preferences(
    ctx: TenantCtx,
    st: web::Data<AppState>,
    p: web::Path<AgentPath>,
) -> Result<HttpResponse, ApiError> {
    Ok(HttpResponse::Ok().json(st.usage.agent_preferences(&ctx, agent_name(&p)?).await?))
}

async fn put_preferences(
    ctx: TenantCtx,
    st: web::Data<AppState>,
    p: web::Path<AgentPath>,
    body: web::Json<Value>,
) -> Result<HttpResponse, ApiError> {
    let v = st
        .usage
        .set_agent_preferences(&ctx, agent_name(&p)?, body.into_inner())
        .await?;
    Ok(HttpResponse::Ok().json(v))
}
