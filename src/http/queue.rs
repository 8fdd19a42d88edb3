//! `/api/jobs/...` (a tenant's jobs: enqueue member or service, read viewer, cancel and retry
//! member) and `/api/queue/...` (workers: a service key or the admin token).
use super::extract::{caller, tenant_ctx};
use super::routes::{Mount, Op};
use super::usage_views::TotalsView;
use crate::auth::{Access, Caller};
use crate::error::ApiError;
use crate::pagination::PageRequest;
use crate::queue::job::{Job, Status};
use crate::queue::lease::{LeaseRequest, MAX_LEASE_JOBS, MAX_WAIT_SECONDS};
use crate::queue::report::Report;
use crate::queue::Worker;
use crate::state::AppState;
use crate::tenancy::TenantCtx;
use actix_web::http::Method;
use actix_web::{web, HttpRequest, HttpResponse};
use serde::{Deserialize, Serialize};
use serde_json::Value;
use std::time::Duration;

pub fn ops() -> Vec<Op> {
    vec![
        Op::new(Method::POST, "/jobs", Mount::Tenant, || web::route().to(enqueue))
            .doc("Enqueue a job, or a batch of up to 1000 in one transaction; answered once durable (200 and the existing job for a known idempotency_key)", Access::MemberOrService)
            .body("JobPost")
            .ok(201, Some("Job")),
        Op::new(Method::GET, "/jobs", Mount::Tenant, || web::route().to(list))
            .doc("The tenant's jobs, newest first", Access::Viewer)
            .query(&["status", "queue", "kind", "limit", "cursor"])
            .ok(200, Some("JobPage")),
        Op::new(Method::GET, "/jobs/{id}", Mount::Tenant, || web::route().to(get))
            .doc("A job, with the usage of the events that name it", Access::Viewer)
            .ok(200, Some("Job")),
        Op::new(Method::POST, "/jobs/{id}/cancel", Mount::Tenant, || web::route().to(cancel))
            .doc("Cancel a queued or retrying job (409 conflict otherwise)", Access::Member)
            .ok(200, Some("Job")),
        Op::new(Method::POST, "/jobs/{id}/retry", Mount::Tenant, || web::route().to(retry))
            .doc("Put a dead or cancelled job back in the queue, its attempts reset (409 conflict otherwise)", Access::Member)
            .ok(200, Some("Job")),
        Op::new(Method::GET, "/queue/counts", Mount::Tenant, || web::route().to(counts))
            .doc("The tenant's jobs counted by status (from memory, no scan)", Access::Viewer)
            .ok(200, Some("JobCounts")),
        Op::new(Method::GET, "/queue/tenants", Mount::Api, || web::route().to(overview))
            .doc("Every tenant's jobs counted by status, for the operator", Access::Admin)
            .ok(200, Some("QueueOverview")),
        Op::new(Method::POST, "/queue/lease", Mount::Api, || web::route().to(lease))
            .doc("Lease ready jobs, fairly across tenants; long-polls up to wait_seconds", Access::Worker)
            .body("LeaseRequest")
            .ok(200, Some("LeasedJobs")),
        Op::new(Method::POST, "/queue/jobs/{id}/heartbeat", Mount::Api, || web::route().to(heartbeat))
            .doc("Extend a lease", Access::Worker)
            .body("Heartbeat")
            .ok(200, Some("Job"))
            .errors(&["lease_lost"]),
        Op::new(Method::POST, "/queue/jobs/{id}/complete", Mount::Api, || web::route().to(complete))
            .doc("Finish a leased job with its result", Access::Worker)
            .body("Complete")
            .ok(200, Some("Job"))
            .errors(&["lease_lost"]),
        Op::new(Method::POST, "/queue/jobs/{id}/fail", Mount::Api, || web::route().to(fail))
            .doc("Fail a leased job: retried after attempts^4 s, or dead", Access::Worker)
            .body("Fail")
            .ok(200, Some("Job"))
            .errors(&["lease_lost"]),
    ]
}

/// A job as the contract shows it: its fields, its usage, and for a worker its lease token.
#[derive(Serialize)]
pub struct JobJson<'a> {
    #[serde(flatten)]
    job: &'a Job,
    usage: TotalsView,
    #[serde(skip_serializing_if = "Option::is_none")]
    lease_token: Option<&'a str>,
}

/// `{"jobs": [...]}`, serialized straight from the jobs (a batch answer holds a thousand; going
/// through a `serde_json::Value` first cost a sixth of a batch enqueue's time).
#[derive(Serialize)]
struct JobList<'a> {
    jobs: Vec<JobJson<'a>>,
}

#[derive(Serialize)]
struct JobPage<'a> {
    items: Vec<JobJson<'a>>,
    next_cursor: Option<String>,
}

fn view(job: &Job) -> JobJson<'_> {
    JobJson {
        job,
        usage: (&job.usage).into(),
        lease_token: None,
    }
}

#[derive(Deserialize)]
struct JobPath {
    id: String,
}

#[derive(Deserialize)]
#[serde(deny_unknown_fields)]
struct ListQuery {
    status: Option<String>,
    queue: Option<String>,
    kind: Option<String>,
    limit: Option<u32>,
    cursor: Option<String>,
}

async fn enqueue(
    ctx: TenantCtx,
    st: web::Data<AppState>,
    body: web::Json<Value>,
) -> Result<HttpResponse, ApiError> {
    let (jobs, batch) = st.queue.enqueue(&ctx, body.into_inner()).await?;
    if batch {
        let list: Vec<JobJson> = jobs.iter().map(|(j, _)| view(j)).collect();
        return Ok(HttpResponse::Created().json(JobList { jobs: list }));
    }
    let (job, created) = &jobs[0];
    Ok(match created {
        true => HttpResponse::Created().json(view(job)),
        false => HttpResponse::Ok().json(view(job)),
    })
}

async fn list(
    ctx: TenantCtx,
    st: web::Data<AppState>,
    q: web::Query<ListQuery>,
) -> Result<HttpResponse, ApiError> {
    let q = q.into_inner();
    let status = q.status.as_deref().map(Status::parse).transpose()?;
    let page = PageRequest::parse(q.limit, q.cursor.as_deref())?;
    let page = st.queue.list(&ctx, status, q.queue, q.kind, page).await?;
    let items: Vec<JobJson> = page.items.iter().map(view).collect();
    Ok(HttpResponse::Ok().json(JobPage {
        items,
        next_cursor: page.next_cursor.clone(),
    }))
}

async fn get(
    ctx: TenantCtx,
    st: web::Data<AppState>,
    p: web::Path<JobPath>,
) -> Result<HttpResponse, ApiError> {
    let job = st.queue.get(&ctx, p.into_inner().id).await?;
    Ok(HttpResponse::Ok().json(view(&job)))
}

async fn cancel(
    ctx: TenantCtx,
    st: web::Data<AppState>,
    p: web::Path<JobPath>,
) -> Result<HttpResponse, ApiError> {
    let job = st.queue.cancel(&ctx, p.into_inner().id).await?;
    Ok(HttpResponse::Ok().json(view(&job)))
}

async fn retry(
    ctx: TenantCtx,
    st: web::Data<AppState>,
    p: web::Path<JobPath>,
) -> Result<HttpResponse, ApiError> {
    let job = st.queue.retry(&ctx, p.into_inner().id).await?;
    Ok(HttpResponse::Ok().json(view(&job)))
}

async fn counts(ctx: TenantCtx, st: web::Data<AppState>) -> Result<HttpResponse, ApiError> {
    Ok(HttpResponse::Ok().json(st.queue.counts(&ctx).await?))
}

async fn overview(
    super::extract::AdminCaller(admin): super::extract::AdminCaller,
    st: web::Data<AppState>,
) -> Result<HttpResponse, ApiError> {
    let rows = st.queue.overview(&admin).await?;
    let tenants: Vec<Value> = rows
        .into_iter()
        .filter_map(|(id, counts)| {
            let t = st.tenancy.cache().get(id)?;
            Some(
                serde_json::json!({"tenant_id": id.to_string(), "slug": t.slug.as_str(),
                "name": t.name, "plan": t.plan.as_str(), "counts": counts}),
            )
        })
        .collect();
    Ok(HttpResponse::Ok().json(serde_json::json!({ "tenants": tenants })))
}

#[derive(Deserialize)]
#[serde(deny_unknown_fields)]
struct LeaseBody {
    queues: Option<Vec<String>>,
    max_jobs: Option<usize>,
    wait_seconds: Option<u64>,
}

async fn lease(
    req: HttpRequest,
    st: web::Data<AppState>,
    body: web::Json<LeaseBody>,
) -> Result<HttpResponse, ApiError> {
    let b = body.into_inner();
    let max_jobs = b.max_jobs.unwrap_or(1);
    if !(1..=MAX_LEASE_JOBS).contains(&max_jobs) {
        return Err(ApiError::InvalidRequest(format!(
            "max_jobs must be from 1 to {MAX_LEASE_JOBS}"
        )));
    }
    let wait = b.wait_seconds.unwrap_or(0);
    if wait > MAX_WAIT_SECONDS {
        return Err(ApiError::InvalidRequest(format!(
            "wait_seconds must be from 0 to {MAX_WAIT_SECONDS}"
        )));
    }
    if let Some(qs) = &b.queues {
        if qs.is_empty() || qs.len() > 100 || !qs.iter().all(|q| crate::queue::job::is_name(q)) {
            return Err(ApiError::InvalidRequest(
                "queues must hold 1 to 100 queue names of 1 to 255 characters".into(),
            ));
        }
    }
    let request = LeaseRequest {
        queues: b.queues,
        max_jobs,
        wait: Duration::from_secs(wait),
    };
    let leased = match caller(&req)? {
        Caller::Admin(proof) => st.queue.lease(&Worker::Admin(&proof), request).await?,
        Caller::Key(_) => {
            let ctx = tenant_ctx(&req)?;
            st.queue.lease(&Worker::Tenant(&ctx), request).await?
        }
    };
    let jobs: Vec<JobJson> = leased
        .iter()
        .map(|(j, token)| JobJson {
            job: j,
            usage: (&j.usage).into(),
            lease_token: Some(token),
        })
        .collect();
    Ok(HttpResponse::Ok().json(JobList { jobs }))
}

#[derive(Deserialize)]
#[serde(deny_unknown_fields)]
struct HeartbeatBody {
    lease_token: String,
    lease_seconds: Option<i64>,
}

#[derive(Deserialize)]
#[serde(deny_unknown_fields)]
struct CompleteBody {
    lease_token: String,
    result: Option<Value>,
}

#[derive(Deserialize)]
#[serde(deny_unknown_fields)]
struct FailBody {
    lease_token: String,
    error: String,
    retry: Option<bool>,
}

async fn report(
    req: &HttpRequest,
    st: &AppState,
    id: String,
    token: String,
    r: Report,
) -> Result<HttpResponse, ApiError> {
    let job = match caller(req)? {
        Caller::Admin(proof) => {
            st.queue
                .report(&Worker::Admin(&proof), id, token, r)
                .await?
        }
        Caller::Key(_) => {
            let ctx = tenant_ctx(req)?;
            st.queue.report(&Worker::Tenant(&ctx), id, token, r).await?
        }
    };
    Ok(HttpResponse::Ok().json(view(&job)))
}

async fn heartbeat(
    req: HttpRequest,
    st: web::Data<AppState>,
    p: web::Path<JobPath>,
    b: web::Json<HeartbeatBody>,
) -> Result<HttpResponse, ApiError> {
    let b = b.into_inner();
    report(
        &req,
        &st,
        p.into_inner().id,
        b.lease_token,
        Report::Heartbeat {
            lease_seconds: b.lease_seconds,
        },
    )
    .await
}

async fn complete(
    req: HttpRequest,
    st: web::Data<AppState>,
    p: web::Path<JobPath>,
    b: web::Json<CompleteBody>,
) -> Result<HttpResponse, ApiError> {
    let b = b.into_inner();
    report(
        &req,
        &st,
        p.into_inner().id,
        b.lease_token,
        Report::Complete { result: b.result },
    )
    .await
}

async fn fail(
    req: HttpRequest,
    st: web::Data<AppState>,
    p: web::Path<JobPath>,
    b: web::Json<FailBody>,
) -> Result<HttpResponse, ApiError> {
    let b = b.into_inner();
    report(
        &req,
        &st,
        p.into_inner().id,
        b.lease_token,
        Report::Fail {
            error: b.error,
            retry: b.retry.unwrap_or(true),
        },
    )
    .await
}
