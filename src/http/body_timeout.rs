//! `TENANTRY_BODY_TIMEOUT`: every request body has to arrive whole within it, counted from
//! when the request's head arrived. The framework times out the head only, so a client that
//! sends its body a byte every few seconds would hold a connection (and a worker's memory)
//! for as long as it liked. Every body is read through the stream set up here, whichever
//! extractor reads it; past the deadline it fails, the answer is 408 `request_timeout`, and
//! the connection is closed. A body the handler never read closes the connection too, so the
//! rest of it is not waited for.
use crate::error::ApiError;
use crate::state::AppState;
use actix_web::body::{BoxBody, MessageBody};
use actix_web::dev::{Payload, ServiceRequest, ServiceResponse};
use actix_web::error::PayloadError;
use actix_web::http::ConnectionType;
use actix_web::middleware::Next;
use actix_web::rt::time::{sleep, Sleep};
use actix_web::web::{Bytes, Data};
use actix_web::{Error, HttpMessage, ResponseError};
use futures_core::Stream;
use std::cell::Cell;
use std::future::Future;
use std::pin::Pin;
use std::rc::Rc;
use std::task::{Context, Poll};
use std::time::Duration;

const TIMED_OUT: &str = "the request body did not arrive in time";

/// Whether a body read failed because this module's deadline passed.
pub fn timed_out(e: &PayloadError) -> bool {
    matches!(e, PayloadError::Io(io) if io.kind() == std::io::ErrorKind::TimedOut
        && io.to_string() == TIMED_OUT)
}

#[derive(Clone, Copy, PartialEq, Eq)]
enum Progress {
    Reading,
    Complete,
    TimedOut,
}

struct Deadline {
    inner: Payload,
    sleep: Pin<Box<Sleep>>,
    progress: Rc<Cell<Progress>>,
}

impl Stream for Deadline {
    type Item = Result<Bytes, PayloadError>;

    fn poll_next(self: Pin<&mut Self>, cx: &mut Context<'_>) -> Poll<Option<Self::Item>> {
        let this = self.get_mut();
        match this.progress.get() {
            Progress::Complete => return Poll::Ready(None),
            Progress::TimedOut => return Poll::Ready(Some(Err(timeout_error()))),
            Progress::Reading => {}
        }
        // The deadline first: a client that keeps a trickle going never lets the body be
        // pending for long, and must still be cut off.
        if this.sleep.as_mut().poll(cx).is_ready() {
            this.progress.set(Progress::TimedOut);
            return Poll::Ready(Some(Err(timeout_error())));
        }
        let item = Pin::new(&mut this.inner).poll_next(cx);
        if let Poll::Ready(None) = item {
            this.progress.set(Progress::Complete);
        }
        item
    }
}

fn timeout_error() -> PayloadError {
    PayloadError::Io(std::io::Error::new(std::io::ErrorKind::TimedOut, TIMED_OUT))
}

pub async fn limit(
    mut req: ServiceRequest,
    next: Next<impl MessageBody + 'static>,
) -> Result<ServiceResponse<BoxBody>, Error> {
    let timeout: Option<Duration> = req
        .app_data::<Data<AppState>>()
        .map(|st| st.config.body_timeout);
    let payload = req.take_payload();
    let (Some(timeout), false) = (timeout, matches!(payload, Payload::None)) else {
        req.set_payload(payload);
        return Ok(next.call(req).await?.map_into_boxed_body());
    };
    let progress = Rc::new(Cell::new(Progress::Reading));
    let stream = Deadline {
        inner: payload,
        sleep: Box::pin(sleep(timeout)),
        progress: progress.clone(),
    };
    let boxed: Pin<Box<dyn Stream<Item = Result<Bytes, PayloadError>>>> = Box::pin(stream);
    req.set_payload(Payload::from(boxed));
    let mut res = next.call(req).await?.map_into_boxed_body();
    match progress.get() {
        Progress::Complete => {}
        // Whatever the reader made of the failed read, the answer is the timeout.
        Progress::TimedOut => {
            let req = res.request().clone();
            res = ServiceResponse::new(req, ApiError::RequestTimeout.error_response());
        }
        Progress::Reading => res
            .response_mut()
            .head_mut()
            .set_connection_type(ConnectionType::Close),
    }
    Ok(res)
}
