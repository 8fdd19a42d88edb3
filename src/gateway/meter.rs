//! Reading a provider's own usage from its answer: a JSON body, or the events of a stream as
//! they pass. The stream is relayed as it arrives; the meter only watches, except for the one
//! chunk it must withhold (the usage chunk of a chat stream whose client did not ask for it).
use super::route::Api;
use bytes::{BufMut, Bytes, BytesMut};
use serde::Deserialize;
use serde_json::Value;
use sse_parse::{Event, SseParser};

/// The contract's bound on any token count of an event.
const MAX_TOKENS: u64 = 1_000_000_000_000;
/// The largest single stream event the meter will hold while it waits for its end.
const MAX_EVENT: usize = 8 << 20;

/// The token counts of one call, in the contract's terms: `input` counts every prompt token,
/// cached or not.
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq)]
pub struct Tokens {
    pub input: u64,
    pub output: u64,
    pub cache_read: u64,
    pub cache_write: u64,
    pub reasoning: u64,
}

impl Tokens {
    /// Bounded and consistent, so an odd upstream report can always be recorded: caches within
    /// the input, reasoning within the output.
    fn bounded(self) -> Tokens {
        let input = self.input.min(MAX_TOKENS);
        let output = self.output.min(MAX_TOKENS);
        let cache_read = self.cache_read.min(input);
        Tokens {
            input,
            output,
            cache_read,
            cache_write: self.cache_write.min(input - cache_read),
            reasoning: self.reasoning.min(output),
        }
    }
}

fn n(v: &Value, path: &[&str]) -> Option<u64> {
    path.iter().try_fold(v, |v, k| v.get(k))?.as_u64()
}

/// Reads a `usage` object in the format of `api`; `None` when it holds no counts.
fn tokens(api: Api, u: &Value) -> Option<Tokens> {
    let t = match api {
        Api::ChatCompletions | Api::Embeddings => Tokens {
            input: n(u, &["prompt_tokens"])?,
            output: n(u, &["completion_tokens"]).unwrap_or(0),
            cache_read: n(u, &["prompt_tokens_details", "cached_tokens"]).unwrap_or(0),
            cache_write: 0,
            reasoning: n(u, &["completion_tokens_details", "reasoning_tokens"]).unwrap_or(0),
        },
        Api::Responses => Tokens {
            input: n(u, &["input_tokens"])?,
            output: n(u, &["output_tokens"]).unwrap_or(0),
            cache_read: n(u, &["input_tokens_details", "cached_tokens"]).unwrap_or(0),
            cache_write: 0,
            reasoning: n(u, &["output_tokens_details", "reasoning_tokens"]).unwrap_or(0),
        },
        Api::Messages => {
            let read = n(u, &["cache_read_input_tokens"]).unwrap_or(0);
            let write = n(u, &["cache_creation_input_tokens"]).unwrap_or(0);
            Tokens {
                input: n(u, &["input_tokens"])?
                    .saturating_add(read)
                    .saturating_add(write),
                output: n(u, &["output_tokens"]).unwrap_or(0),
                cache_read: read,
                cache_write: write,
                reasoning: 0,
            }
        }
    };
    Some(t.bounded())
}

/// What the meter learnt of a call.
#[derive(Clone, Debug, Default)]
pub struct Metered {
    /// The upstream's id of its answer (`chatcmpl-...`, `resp_...`, `msg_...`).
    pub id: Option<String>,
    pub tokens: Tokens,
    /// Whether the provider's final usage was seen.
    pub complete: bool,
}

#[derive(Deserialize)]
struct Answer {
    id: Option<String>,
    usage: Option<Value>,
}

/// Meters a whole (not streamed) answer.
pub fn answer(api: Api, body: &[u8]) -> Metered {
    let Ok(a) = serde_json::from_slice::<Answer>(body) else {
        return Metered::default();
    };
    let tokens = a.usage.as_ref().and_then(|u| tokens(api, u));
    Metered {
        id: a.id,
        complete: tokens.is_some(),
        tokens: tokens.unwrap_or_default(),
    }
}

/// Watches a stream's events as they pass.
pub struct StreamMeter {
    api: Api,
    parser: SseParser,
    /// Withhold the usage chunk: tenantry asked for it, the client did not.
    withhold_usage: bool,
    pub metered: Metered,
}

impl StreamMeter {
    pub fn new(api: Api, withhold_usage: bool) -> StreamMeter {
        StreamMeter {
            api,
            parser: SseParser::new().max_buffer(MAX_EVENT),
            withhold_usage,
            metered: Metered::default(),
        }
    }

    /// Takes one chunk as it arrived and gives what to pass on: the chunk itself, or, when a
    /// chunk must be withheld, the complete events it finished minus that one.
    pub fn feed(&mut self, chunk: Bytes) -> Bytes {
        self.parser.feed(&chunk);
        if !self.withhold_usage {
            while let Some(e) = self.parser.next_event() {
                self.observe(&e);
            }
            return chunk;
        }
        let mut out = BytesMut::new();
        while let Some(e) = self.parser.next_event() {
            if !self.observe(&e) {
                write_event(&mut out, &e);
            }
        }
        out.freeze()
    }

    /// Reads one event; true when it is the usage chunk to withhold.
    fn observe(&mut self, e: &Event) -> bool {
        if e.data.is_empty() || e.data == "[DONE]" {
            return false;
        }
        let Ok(v) = serde_json::from_str::<Value>(&e.data) else {
            return false;
        };
        let m = &mut self.metered;
        match self.api {
            Api::ChatCompletions | Api::Embeddings => {
                if m.id.is_none() {
                    m.id = v.get("id").and_then(Value::as_str).map(str::to_string);
                }
                if let Some(t) = v.get("usage").and_then(|u| tokens(self.api, u)) {
                    m.tokens = t;
                    m.complete = true;
                    let no_choices = v
                        .get("choices")
                        .and_then(Value::as_array)
                        .is_none_or(|c| c.is_empty());
                    return self.withhold_usage && no_choices;
                }
            }
            Api::Responses => {
                if let Some(r) = v.get("response") {
                    if let Some(id) = r.get("id").and_then(Value::as_str) {
                        m.id = Some(id.to_string());
                    }
                    if let Some(t) = r.get("usage").and_then(|u| tokens(self.api, u)) {
                        m.tokens = t;
                        m.complete = true;
                    }
                }
            }
            Api::Messages => match v.get("type").and_then(Value::as_str) {
                Some("message_start") => {
                    let msg = v.get("message");
                    m.id = msg
                        .and_then(|msg| msg.get("id"))
                        .and_then(Value::as_str)
                        .map(str::to_string);
                    if let Some(t) = msg
                        .and_then(|msg| msg.get("usage"))
                        .and_then(|u| tokens(self.api, u))
                    {
                        m.tokens = t;
                    }
                }
                Some("message_delta") => {
                    if let Some(u) = v.get("usage") {
                        if let Some(out) = n(u, &["output_tokens"]) {
                            m.tokens.output = out;
                            // Newer answers repeat the input counts here, cumulative.
                            if let Some(t) = tokens(self.api, u) {
                                m.tokens = t;
                            }
                            m.tokens = m.tokens.bounded();
                            m.complete = true;
                        }
                    }
                }
                _ => {}
            },
        }
        false
    }
}

/// Writes an event back in the wire format, for the chunks the meter re-emits.
fn write_event(out: &mut BytesMut, e: &Event) {
    if !e.event.is_empty() && e.event != "message" {
        out.put_slice(b"event: ");
        out.put_slice(e.event.as_bytes());
        out.put_u8(b'\n');
    }
    if !e.id.is_empty() {
        out.put_slice(b"id: ");
        out.put_slice(e.id.as_bytes());
        out.put_u8(b'\n');
    }
    for line in e.data.split('\n') {
        out.put_slice(b"data: ");
        out.put_slice(line.as_bytes());
        out.put_u8(b'\n');
    }
    out.put_u8(b'\n');
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn openai_usage_with_cache_and_reasoning() {
        let body = br#"{"id":"chatcmpl-1","usage":{"prompt_tokens":100,"completion_tokens":40,
            "prompt_tokens_details":{"cached_tokens":60},"completion_tokens_details":{"reasoning_tokens":30}}}"#;
        let m = answer(Api::ChatCompletions, body);
        assert_eq!(m.id.as_deref(), Some("chatcmpl-1"));
        assert!(m.complete);
        let want = Tokens {
            input: 100,
            output: 40,
            cache_read: 60,
            cache_write: 0,
            reasoning: 30,
        };
        assert_eq!(m.tokens, want);
    }

    #[test]
    fn anthropic_input_counts_every_prompt_token() {
        let body = br#"{"id":"msg_1","usage":{"input_tokens":10,"cache_read_input_tokens":200,
            "cache_creation_input_tokens":50,"output_tokens":7}}"#;
        let m = answer(Api::Messages, body);
        let want = Tokens {
            input: 260,
            output: 7,
            cache_read: 200,
            cache_write: 50,
            reasoning: 0,
        };
        assert_eq!(m.tokens, want);
    }

    #[test]
    fn an_answer_without_usage_is_incomplete() {
        let m = answer(Api::Embeddings, br#"{"object":"list","data":[]}"#);
        assert!(!m.complete);
        assert!(m.id.is_none());
        assert!(!answer(Api::ChatCompletions, b"not json").complete);
    }

    #[test]
    fn odd_reports_are_bounded_to_something_recordable() {
        let body = br#"{"usage":{"prompt_tokens":5,"completion_tokens":2,
            "prompt_tokens_details":{"cached_tokens":9},"completion_tokens_details":{"reasoning_tokens":3}}}"#;
        let t = answer(Api::ChatCompletions, body).tokens;
        assert_eq!((t.cache_read, t.reasoning), (5, 2));
    }

    #[test]
    fn a_chat_stream_split_anywhere_yields_its_usage_and_the_withheld_chunk_is_dropped() {
        let wire = "data: {\"id\":\"chatcmpl-9\",\"choices\":[{\"delta\":{\"content\":\"hi\"}}],\"usage\":null}\n\n\
                    data: {\"id\":\"chatcmpl-9\",\"choices\":[],\"usage\":{\"prompt_tokens\":3,\"completion_tokens\":1}}\n\n\
                    data: [DONE]\n\n";
        for split in [1, 7, 40, wire.len() - 1] {
            let mut m = StreamMeter::new(Api::ChatCompletions, true);
            let mut out = Vec::new();
            for part in [&wire[..split], &wire[split..]] {
                out.extend_from_slice(&m.feed(Bytes::copy_from_slice(part.as_bytes())));
            }
            let out = String::from_utf8(out).unwrap();
            assert!(m.metered.complete);
            assert_eq!(m.metered.id.as_deref(), Some("chatcmpl-9"));
            assert_eq!((m.metered.tokens.input, m.metered.tokens.output), (3, 1));
            assert!(!out.contains("prompt_tokens"), "{out}");
            assert!(
                out.contains("\"content\":\"hi\"") && out.ends_with("data: [DONE]\n\n"),
                "{out}"
            );
        }
    }

    #[test]
    fn an_anthropic_stream_takes_output_from_the_last_message_delta() {
        let wire = "event: message_start\ndata: {\"type\":\"message_start\",\"message\":{\"id\":\"msg_7\",\"usage\":{\"input_tokens\":4,\"cache_read_input_tokens\":10,\"output_tokens\":1}}}\n\n\
                    event: content_block_delta\ndata: {\"type\":\"content_block_delta\"}\n\n\
                    event: message_delta\ndata: {\"type\":\"message_delta\",\"usage\":{\"output_tokens\":25}}\n\n";
        let mut m = StreamMeter::new(Api::Messages, false);
        let passed = m.feed(Bytes::from(wire));
        assert_eq!(passed, wire.as_bytes(), "relayed unchanged");
        let want = Tokens {
            input: 14,
            output: 25,
            cache_read: 10,
            cache_write: 0,
            reasoning: 0,
        };
        assert_eq!(m.metered.tokens, want);
        assert_eq!(m.metered.id.as_deref(), Some("msg_7"));
        assert!(m.metered.complete);
    }

    #[test]
    fn a_responses_stream_reads_usage_from_the_completed_event() {
        let wire = "event: response.created\ndata: {\"type\":\"response.created\",\"response\":{\"id\":\"resp_1\",\"usage\":null}}\n\n\
                    event: response.completed\ndata: {\"type\":\"response.completed\",\"response\":{\"id\":\"resp_1\",\"usage\":{\"input_tokens\":8,\"output_tokens\":3,\"output_tokens_details\":{\"reasoning_tokens\":2}}}}\n\n";
        let mut m = StreamMeter::new(Api::Responses, false);
        m.feed(Bytes::from(wire));
        assert!(m.metered.complete);
        assert_eq!(m.metered.tokens.reasoning, 2);
        assert_eq!(m.metered.id.as_deref(), Some("resp_1"));
    }
}
