//! Streams an answer to the client as it arrives, and records what every call cost. A stream
//! is pumped by a task of its own into a small channel the response reads: when the client
//! goes away the pump reads on until the provider's usage arrives (within the call's timeout),
//! so a call is metered however it ended. The stream ends for the client once it is recorded.
use super::meter::{Metered, StreamMeter, Tokens};
use super::recent::Call;
use super::route::{Api, Route};
use super::{inflight::Permit, Gateway, Labels};
use crate::error::ApiError;
use crate::events::{Kind, NewEvent};
use crate::tenancy::TenantCtx;
use crate::time::Micros;
use crate::usage::event::{is_label, UsageEvent};
use crate::usage::model::ModelName;
use crate::usage::money::Nanousd;
use bytes::Bytes;
use serde_json::{json, Value};
use std::pin::Pin;
use std::task::{Context, Poll};
use std::time::Instant;
use tokio::sync::mpsc;

/// Chunks that may wait for a slow client before the pump waits too.
const BUFFERED_CHUNKS: usize = 16;

/// A call on its way to being recorded.
pub(super) struct Finished {
    pub ctx: TenantCtx,
    pub at: Micros,
    pub started: Instant,
    pub api: Api,
    pub route: Route,
    pub stream: bool,
    pub status: u16,
    pub labels: Labels,
    pub client_disconnected: bool,
    pub upstream_error: Option<String>,
}

impl Labels {
    /// Each label, by the rule of an event's labels (`usage::event::is_label`).
    pub(super) fn check(&self) -> Result<(), ApiError> {
        for (name, v) in [
            ("X-Tenantry-User", &self.user),
            ("X-Tenantry-Agent", &self.agent),
            ("X-Tenantry-Stage", &self.stage),
            ("X-Tenantry-Job", &self.job),
        ] {
            if let Some(v) = v {
                if !is_label(v) {
                    return Err(ApiError::InvalidRequest(format!(
                        "{name} must be 1 to 255 printable characters"
                    )));
                }
            }
        }
        Ok(())
    }
}

/// An id the usage store takes as `event_id`: the upstream's when it is a fit label.
fn event_id(upstream: Option<String>) -> String {
    upstream
        .filter(|id| is_label(id))
        .unwrap_or_else(|| format!("gw-{}", uuid::Uuid::new_v4()))
}

/// The response body of a streamed call: chunks as the pump hands them over.
pub struct Relay(mpsc::Receiver<Result<Bytes, std::io::Error>>);

impl futures_core::Stream for Relay {
    type Item = Result<Bytes, std::io::Error>;

    fn poll_next(mut self: Pin<&mut Self>, cx: &mut Context<'_>) -> Poll<Option<Self::Item>> {
        self.0.poll_recv(cx)
    }
}

impl Relay {
    pub(super) fn start(
        gateway: Gateway,
        resp: reqwest::Response,
        meter: StreamMeter,
        fin: Finished,
        permit: Permit,
    ) -> Relay {
        let (tx, rx) = mpsc::channel(BUFFERED_CHUNKS);
        tokio::spawn(pump(gateway, resp, meter, fin, tx, permit));
        Relay(rx)
    }
}

async fn pump(
    gateway: Gateway,
    mut resp: reqwest::Response,
    mut meter: StreamMeter,
    mut fin: Finished,
    tx: mpsc::Sender<Result<Bytes, std::io::Error>>,
    permit: Permit,
) {
    loop {
        match resp.chunk().await {
            Ok(Some(chunk)) => {
                let out = meter.feed(chunk);
                if !fin.client_disconnected && !out.is_empty() && tx.send(Ok(out)).await.is_err() {
                    fin.client_disconnected = true;
                }
                if fin.client_disconnected && meter.metered.complete {
                    break;
                }
            }
            Ok(None) => break,
            Err(e) => {
                let cause = match super::call::upstream_error(&e) {
                    ApiError::UpstreamTimeout(_) => "timeout".to_string(),
                    other => other.to_string(),
                };
                fin.upstream_error = Some(cause);
                if !fin.client_disconnected {
                    // An error, not an end: the client must not take a cut stream for whole.
                    let failed = std::io::Error::other("the provider's stream broke off");
                    let _ = tx.send(Err(failed)).await;
                }
                break;
            }
        }
    }
    // Recorded before the client's stream ends (the channel closes when `tx` drops): as with a
    // whole answer, the end of a stream means the call is metered, and a client that streams
    // call after call waits for each to be written, so records cannot pile up in memory.
    gateway.finish(fin, meter.metered).await;
    drop(tx);
    drop(permit);
}

impl Gateway {
    /// Records a call the provider answered: one usage event (zero tokens and
    /// `usage_missing` when the provider sent none, with a warning event), and the recent
    /// call. Gives the billed cost; a metering failure is logged, never the caller's.
    pub(super) async fn finish(&self, fin: Finished, metered: Metered) -> Option<Nanousd> {
        let duration_ms = fin.started.elapsed().as_millis() as u64;
        let usage_missing = !metered.complete;
        // Counts from before a missing final usage are not the call's (Anthropic's
        // message_start carries the input and a placeholder output of 1): the contract records
        // such a call with zero tokens, and the warning below says so.
        let t = if usage_missing {
            Tokens::default()
        } else {
            metered.tokens
        };
        let mut gw = json!({"path": fin.api.route(), "stream": fin.stream, "status": fin.status});
        if fin.client_disconnected {
            gw["client_disconnected"] = Value::Bool(true);
        }
        if usage_missing {
            gw["usage_missing"] = Value::Bool(true);
        }
        if let Some(e) = &fin.upstream_error {
            gw["upstream_error"] = Value::String(e.clone());
        }
        let event_id = event_id(metered.id);
        let mut cost = None;
        if self.usage.metering() {
            let model = ModelName::parse(fin.route.model.clone());
            let recorded = match model {
                Ok(model) => {
                    let event = UsageEvent {
                        event_id: Some(event_id.clone()),
                        ts: fin.at,
                        model,
                        input_tokens: t.input,
                        output_tokens: t.output,
                        cache_read_tokens: t.cache_read,
                        cache_write_tokens: t.cache_write,
                        reasoning_tokens: t.reasoning,
                        cost: None,
                        pipeline_stage: fin.labels.stage.clone(),
                        agent_name: fin.labels.agent.clone(),
                        job_id: fin.labels.job.clone(),
                        user_id: fin.labels.user.clone(),
                        duration_ms: Some(duration_ms),
                        metadata: Some(json!({ "gateway": gw }).to_string()),
                    };
                    self.usage.record(&fin.ctx, event).await
                }
                Err(m) => Err(ApiError::InvalidRequest(m)),
            };
            match recorded {
                Ok(outcome) => cost = outcome.events.first().map(|e| e.billed),
                Err(e) => tracing::error!(
                    tenant_id = %fin.ctx.id(), event_id, error = %e,
                    "a gateway call could not be metered"
                ),
            }
        }
        if usage_missing {
            let data =
                json!({"path": fin.api.route(), "model": fin.route.model, "event_id": event_id});
            let msg = format!(
                "a {} call to {} ended without the provider's usage; it was recorded with zero tokens",
                fin.route.model,
                fin.api.route()
            );
            let e = NewEvent::of(Kind::GatewayUsageMissing, fin.ctx.id(), msg, data);
            if let Err(e) = self.events.record(self.now(), e).await {
                tracing::error!(error = %e, "recording gateway.usage_missing");
            }
        }
        self.recent.push(
            fin.ctx.id(),
            Call {
                at: fin.at,
                path: fin.api.route(),
                model: fin.route.model,
                provider: fin.route.provider.as_str(),
                stream: fin.stream,
                status: fin.status,
                error: None,
                input_tokens: t.input,
                output_tokens: t.output,
                cost,
                duration_ms,
                client_disconnected: fin.client_disconnected,
                usage_missing,
            },
        );
        cost
    }

    /// Remembers a call that was not metered: the provider answered an error (`err` is
    /// `None`: its status says it), or tenantry got no answer (`err` says why).
    pub(super) fn remember_failure(&self, fin: &Finished, err: Option<&ApiError>) {
        self.recent.push(
            fin.ctx.id(),
            Call {
                at: fin.at,
                path: fin.api.route(),
                model: fin.route.model.clone(),
                provider: fin.route.provider.as_str(),
                stream: fin.stream,
                status: fin.status,
                error: err.map(ApiError::code),
                input_tokens: 0,
                output_tokens: 0,
                cost: None,
                duration_ms: fin.started.elapsed().as_millis() as u64,
                client_disconnected: false,
                usage_missing: false,
            },
        );
    }
}
