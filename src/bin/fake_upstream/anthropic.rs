//! Anthropic wire format: messages, plain and streamed (`message_start` ... `message_stop`).
use super::sse::Units;
use super::{push_json_str, word, Ctx, Fake};
use std::fmt::Write as _;

fn anthropic_usage(out: &mut String, f: &Fake, output: u64) {
    let _ = write!(
        out,
        r#"{{"input_tokens":{},"cache_creation_input_tokens":{},"cache_read_input_tokens":{},"output_tokens":{output}}}"#,
        f.prompt, f.cache_write, f.cache_read
    );
}

pub(super) fn messages(c: &Ctx) -> String {
    let mut out = String::with_capacity(480);
    let _ = write!(
        out,
        r#"{{"id":{},"type":"message","role":"assistant","model":{},"content":[{{"type":"text","text":"#,
        c.id("msg_"),
        c.model
    );
    push_json_str(&mut out, &c.full_text());
    out.push_str(r#"}],"stop_reason":"end_turn","stop_sequence":null"#);
    if !c.fake.no_usage {
        out.push_str(r#","usage":"#);
        anthropic_usage(&mut out, c.fake, c.fake.completion);
    }
    out.push('}');
    out
}

pub(super) fn messages_stream(c: &Ctx) -> Units {
    let event = |name: &str, data: &str| format!("event: {name}\ndata: {data}\n\n");
    let mut start = format!(
        r#"{{"type":"message_start","message":{{"id":{},"type":"message","role":"assistant","model":{},"content":[],"stop_reason":null,"stop_sequence":null"#,
        c.id("msg_"),
        c.model
    );
    if !c.fake.no_usage {
        start.push_str(r#","usage":"#);
        anthropic_usage(&mut start, c.fake, 1);
    }
    start.push_str("}}");
    let mut head = event("message_start", &start);
    head += &event(
        "content_block_start",
        r#"{"type":"content_block_start","index":0,"content_block":{"type":"text","text":""}}"#,
    );
    head += &event("ping", r#"{"type": "ping"}"#);
    let chunks = (0..c.fake.chunks)
        .map(|i| {
            let mut text = String::new();
            push_json_str(&mut text, word(i));
            event(
                "content_block_delta",
                &format!(r#"{{"type":"content_block_delta","index":0,"delta":{{"type":"text_delta","text":{text}}}}}"#),
            )
        })
        .collect();
    let mut tail = event(
        "content_block_stop",
        r#"{"type":"content_block_stop","index":0}"#,
    );
    let mut delta = String::from(
        r#"{"type":"message_delta","delta":{"stop_reason":"end_turn","stop_sequence":null}"#,
    );
    if !c.fake.no_usage {
        let _ = write!(
            delta,
            r#","usage":{{"output_tokens":{}}}"#,
            c.fake.completion
        );
    }
    delta.push('}');
    tail += &event("message_delta", &delta);
    tail += &event("message_stop", r#"{"type":"message_stop"}"#);
    Units { head, chunks, tail }
}
