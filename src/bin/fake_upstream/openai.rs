//! OpenAI wire format: chat completions (plain and streamed), embeddings, the Responses API
//! (plain and streamed, with its named events) and the model list.
use super::sse::Units;
use super::{push_json_str, word, Ctx, Fake};
use base64::Engine;
use std::fmt::Write as _;

fn openai_usage(out: &mut String, f: &Fake) {
    let _ = write!(
        out,
        r#"{{"prompt_tokens":{},"completion_tokens":{},"total_tokens":{},"prompt_tokens_details":{{"cached_tokens":{},"audio_tokens":0}},"completion_tokens_details":{{"reasoning_tokens":{},"audio_tokens":0,"accepted_prediction_tokens":0,"rejected_prediction_tokens":0}}}}"#,
        f.prompt,
        f.completion,
        f.prompt + f.completion,
        f.cached,
        f.reasoning
    );
}

pub(super) fn chat(c: &Ctx) -> String {
    let mut out = String::with_capacity(640);
    let _ = write!(
        out,
        r#"{{"id":{},"object":"chat.completion","created":{},"model":{},"choices":[{{"index":0,"message":{{"role":"assistant","content":"#,
        c.id("chatcmpl-"),
        c.created,
        c.model
    );
    push_json_str(&mut out, &c.full_text());
    out.push_str(r#","refusal":null},"logprobs":null,"finish_reason":"stop"}]"#);
    if !c.fake.no_usage {
        out.push_str(r#","usage":"#);
        openai_usage(&mut out, c.fake);
    }
    out.push_str(r#","system_fingerprint":"fp_fake"}"#);
    out
}

pub(super) fn chat_stream(c: &Ctx, include_usage: bool) -> Units {
    let id = c.id("chatcmpl-");
    // Real OpenAI puts `"usage":null` on every chunk once usage was asked for.
    let usage_null = if include_usage {
        r#","usage":null"#
    } else {
        ""
    };
    let chunk = |delta: &str, finish: &str| {
        format!(
            "data: {{\"id\":{id},\"object\":\"chat.completion.chunk\",\"created\":{},\"model\":{},\"system_fingerprint\":\"fp_fake\",\"choices\":[{{\"index\":0,\"delta\":{delta},\"logprobs\":null,\"finish_reason\":{finish}}}]{usage_null}}}\n\n",
            c.created, c.model
        )
    };
    let head = chunk(
        r#"{"role":"assistant","content":"","refusal":null}"#,
        "null",
    );
    let chunks = (0..c.fake.chunks)
        .map(|i| {
            let mut delta = String::from(r#"{"content":"#);
            push_json_str(&mut delta, word(i));
            delta.push('}');
            chunk(&delta, "null")
        })
        .collect();
    let mut tail = chunk("{}", r#""stop""#);
    if include_usage && !c.fake.no_usage {
        let _ = write!(
            tail,
            "data: {{\"id\":{id},\"object\":\"chat.completion.chunk\",\"created\":{},\"model\":{},\"system_fingerprint\":\"fp_fake\",\"choices\":[],\"usage\":",
            c.created, c.model
        );
        openai_usage(&mut tail, c.fake);
        tail.push_str("}\n\n");
    }
    tail.push_str("data: [DONE]\n\n");
    Units { head, chunks, tail }
}

pub(super) fn embeddings(c: &Ctx, base64: bool) -> String {
    const VECTOR: [f32; 8] = [0.1, 0.2, 0.3, 0.4, 0.5, 0.6, 0.7, 0.8];
    let mut out = String::with_capacity(320);
    out.push_str(r#"{"object":"list","data":[{"object":"embedding","index":0,"embedding":"#);
    if base64 {
        let bytes: Vec<u8> = VECTOR.iter().flat_map(|f| f.to_le_bytes()).collect();
        push_json_str(
            &mut out,
            &base64::engine::general_purpose::STANDARD.encode(bytes),
        );
    } else {
        out.push_str("[0.1,0.2,0.3,0.4,0.5,0.6,0.7,0.8]");
    }
    let _ = write!(out, r#"}}],"model":{}"#, c.model);
    if !c.fake.no_usage {
        let _ = write!(
            out,
            r#","usage":{{"prompt_tokens":{p},"total_tokens":{p}}}"#,
            p = c.fake.prompt
        );
    }
    out.push('}');
    out
}

fn response_usage(out: &mut String, f: &Fake) {
    let _ = write!(
        out,
        r#"{{"input_tokens":{},"input_tokens_details":{{"cached_tokens":{},"cache_write_tokens":{}}},"output_tokens":{},"output_tokens_details":{{"reasoning_tokens":{}}},"total_tokens":{}}}"#,
        f.prompt,
        f.cached,
        f.cache_write,
        f.completion,
        f.reasoning,
        f.prompt + f.completion
    );
}

/// The message item of a Responses answer; `text` None renders it in progress and empty.
fn response_message(out: &mut String, msg_id: &str, text: Option<&str>) {
    let status = if text.is_some() {
        "completed"
    } else {
        "in_progress"
    };
    let _ = write!(
        out,
        r#"{{"id":{msg_id},"type":"message","status":"{status}","role":"assistant","content":["#
    );
    if let Some(text) = text {
        out.push_str(r#"{"type":"output_text","annotations":[],"logprobs":[],"text":"#);
        push_json_str(out, text);
        out.push('}');
    }
    out.push_str("]}");
}

/// The Responses API `response` object, in progress (no output, no usage) or completed.
fn response_object(c: &Ctx, id: &str, msg_id: &str, text: Option<&str>) -> String {
    let mut out = String::with_capacity(1024);
    let status = if text.is_some() {
        "completed"
    } else {
        "in_progress"
    };
    let _ = write!(
        out,
        r#"{{"id":{id},"object":"response","created_at":{},"status":"{status}","background":false,"error":null,"incomplete_details":null,"instructions":null,"max_output_tokens":null,"model":{},"output":["#,
        c.created, c.model
    );
    if text.is_some() {
        response_message(&mut out, msg_id, text);
    }
    out.push_str(r#"],"parallel_tool_calls":true,"previous_response_id":null,"reasoning":{"effort":null,"summary":null},"service_tier":"default","store":true,"temperature":1.0,"text":{"format":{"type":"text"}},"tool_choice":"auto","tools":[],"top_p":1.0,"truncation":"disabled""#);
    // In progress, usage is null as OpenAI sends it; finished with `no_usage`, the key is gone.
    match (text.is_some(), c.fake.no_usage) {
        (false, _) => out.push_str(r#","usage":null"#),
        (true, false) => {
            out.push_str(r#","usage":"#);
            response_usage(&mut out, c.fake);
        }
        (true, true) => {}
    }
    out.push_str(r#","user":null,"metadata":{}}"#);
    out
}

pub(super) fn responses(c: &Ctx) -> String {
    let (id, msg_id) = (c.id("resp_"), c.id("msg_"));
    response_object(c, &id, &msg_id, Some(&c.full_text()))
}

pub(super) fn responses_stream(c: &Ctx) -> Units {
    let (id, msg_id) = (c.id("resp_"), c.id("msg_"));
    let mut seq = 0u64;
    let mut event = |name: &str, fields: &str| {
        let e = format!(
            "event: {name}\ndata: {{\"type\":\"{name}\",\"sequence_number\":{seq},{fields}}}\n\n"
        );
        seq += 1;
        e
    };
    let pending = response_object(c, &id, &msg_id, None);
    let mut item = String::new();
    response_message(&mut item, &msg_id, None);
    let place = format!(r#""item_id":{msg_id},"output_index":0,"content_index":0"#);
    let mut head = event("response.created", &format!(r#""response":{pending}"#));
    head += &event("response.in_progress", &format!(r#""response":{pending}"#));
    head += &event(
        "response.output_item.added",
        &format!(r#""output_index":0,"item":{item}"#),
    );
    head += &event(
        "response.content_part.added",
        &format!(
            r#"{place},"part":{{"type":"output_text","annotations":[],"logprobs":[],"text":""}}"#
        ),
    );
    let chunks = (0..c.fake.chunks)
        .map(|i| {
            let mut delta = String::new();
            push_json_str(&mut delta, word(i));
            event(
                "response.output_text.delta",
                &format!(r#"{place},"delta":{delta},"logprobs":[]"#),
            )
        })
        .collect();
    let raw_text: String = (0..c.fake.chunks).map(word).collect();
    let mut text = String::new();
    push_json_str(&mut text, &raw_text);
    let mut done_item = String::new();
    response_message(&mut done_item, &msg_id, Some(&raw_text));
    let mut tail = event(
        "response.output_text.done",
        &format!(r#"{place},"text":{text},"logprobs":[]"#),
    );
    tail += &event(
        "response.content_part.done",
        &format!(
            r#"{place},"part":{{"type":"output_text","annotations":[],"logprobs":[],"text":{text}}}"#
        ),
    );
    tail += &event(
        "response.output_item.done",
        &format!(r#""output_index":0,"item":{done_item}"#),
    );
    let completed = response_object(c, &id, &msg_id, Some(&raw_text));
    tail += &event("response.completed", &format!(r#""response":{completed}"#));
    Units { head, chunks, tail }
}

pub(super) fn models(created: u64) -> String {
    let mut out = String::from(r#"{"object":"list","data":["#);
    for (i, (id, owner)) in [
        ("gpt-4o-mini", "openai"),
        ("gpt-4o", "openai"),
        ("text-embedding-3-small", "openai"),
    ]
    .iter()
    .enumerate()
    {
        let sep = if i == 0 { "" } else { "," };
        let _ = write!(
            out,
            r#"{sep}{{"id":"{id}","object":"model","created":{created},"owned_by":"{owner}"}}"#
        );
    }
    out.push_str("]}");
    out
}
