//! Server-sent event bodies: optional pacing between chunks and a real mid-stream abort.
use super::Fake;
use actix_web::rt::time::{sleep, Sleep};
use actix_web::{web, HttpResponse};
use futures_core::Stream;
use std::collections::VecDeque;
use std::future::Future;
use std::pin::Pin;
use std::task::{Context, Poll};
use std::time::Duration;

/// A stream in three parts: what precedes the content, one unit per content chunk, and what
/// follows it. Pacing and aborts act between units.
pub(super) struct Units {
    pub(super) head: String,
    pub(super) chunks: Vec<String>,
    pub(super) tail: String,
}

pub(super) fn sse_answer(fake: &Fake, units: Units) -> HttpResponse {
    HttpResponse::Ok()
        .content_type("text/event-stream")
        .insert_header(("cache-control", "no-cache"))
        .streaming(SseBody::new(fake, units))
}

/// The streamed body: waits `delay` between parts, and fails after `die_after` parts so that
/// actix drops the connection without the chunked encoding's terminator: a real abort.
pub(super) struct SseBody {
    parts: VecDeque<web::Bytes>,
    delay: Duration,
    die_after: Option<usize>,
    sent: usize,
    grace_taken: bool,
    sleep: Option<Pin<Box<Sleep>>>,
}

impl SseBody {
    pub(super) fn new(fake: &Fake, units: Units) -> Self {
        let paced = !fake.chunk_delay.is_zero() || fake.die_after_chunks.is_some();
        let parts: VecDeque<web::Bytes> = if paced {
            let mut parts = VecDeque::with_capacity(units.chunks.len() + 2);
            parts.push_back(units.head.into());
            parts.extend(units.chunks.into_iter().map(web::Bytes::from));
            parts.push_back(units.tail.into());
            parts
        } else {
            // Unpaced: one write, the cheapest thing for the benchmark; the events are the same.
            let mut all = units.head;
            units.chunks.iter().for_each(|c| all.push_str(c));
            all.push_str(&units.tail);
            VecDeque::from([all.into()])
        };
        SseBody {
            parts,
            delay: fake.chunk_delay,
            // The head counts as one part, so dying after n chunks means after n + 1 parts.
            die_after: fake.die_after_chunks.map(|n| n + 1),
            sent: 0,
            grace_taken: false,
            sleep: None,
        }
    }
}

impl Stream for SseBody {
    type Item = Result<web::Bytes, std::io::Error>;

    fn poll_next(self: Pin<&mut Self>, cx: &mut Context<'_>) -> Poll<Option<Self::Item>> {
        let this = self.get_mut();
        loop {
            if let Some(s) = this.sleep.as_mut() {
                if s.as_mut().poll(cx).is_pending() {
                    return Poll::Pending;
                }
                this.sleep = None;
            }
            if this.die_after == Some(this.sent) {
                if this.grace_taken {
                    return Poll::Ready(Some(Err(std::io::Error::other("fake: die_after_chunks"))));
                }
                // Give the parts already written a moment to leave before the abort.
                this.grace_taken = true;
                this.sleep = Some(Box::pin(sleep(Duration::from_millis(50))));
                continue;
            }
            let Some(part) = this.parts.pop_front() else {
                return Poll::Ready(None);
            };
            this.sent += 1;
            if !this.delay.is_zero() && !this.parts.is_empty() {
                this.sleep = Some(Box::pin(sleep(this.delay)));
            }
            return Poll::Ready(Some(Ok(part)));
        }
    }
}
