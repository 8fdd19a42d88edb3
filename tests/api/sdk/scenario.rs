//! The SDK test's scenario: the calls it makes, the prices it expects them at (typed by hand,
//! not read from the code under test) and the exact arithmetic of the contract's cost formula.
use serde_json::{json, Value};

/// Built-in list prices, typed by hand from `src/usage/pricing.rs`, in micro-USD per million
/// tokens: model, input, output, cache read, cache write (`None`: the input price applies).
pub type Price = (&'static str, i128, i128, Option<i128>, Option<i128>);
#[rustfmt::skip]
pub const PRICES: &[Price] = &[
    ("gpt-4o-mini", 150_000, 600_000, Some(75_000), None),
    ("o4-mini", 1_100_000, 4_400_000, Some(275_000), None),
    ("text-embedding-3-small", 20_000, 0, None, None),
    ("gpt-4.1-mini", 400_000, 1_600_000, Some(100_000), None),
    ("o3-mini", 1_100_000, 4_400_000, Some(550_000), None),
    ("gemini-1.5-flash-8b", 37_500, 150_000, None, None),
    ("claude-3-5-haiku", 800_000, 4_000_000, Some(80_000), Some(1_000_000)),
    ("claude-haiku-4-5", 1_000_000, 5_000_000, Some(100_000), Some(1_250_000)),
    ("claude-3-7-sonnet", 3_000_000, 15_000_000, Some(300_000), Some(3_750_000)),
];

pub const CHAT: &str = "/v1/chat/completions";
pub const MESSAGES: &str = "/v1/messages";

/// One metered SDK call (its name in gateway_sdk.py), the model as the event records it (the
/// client's name, prefix stripped), the pricing row it falls back to, the path, whether it is
/// streamed, and the tokens tenantry must record: input (every prompt token, cached ones
/// included), output, cache read, cache write, reasoning.
pub type Call = (
    &'static str,
    &'static str,
    &'static str,
    &'static str,
    bool,
    [u64; 5],
);
#[rustfmt::skip]
pub const CALLS: &[Call] = &[
    ("chat", "gpt-4o-mini", "gpt-4o-mini", CHAT, false, [1000, 200, 400, 0, 50]),
    // Streamed without stream_options: metered all the same, from the usage chunk tenantry
    // asked for and withheld.
    ("chat_stream", "gpt-4o-mini", "gpt-4o-mini", CHAT, true, [1100, 210, 300, 0, 20]),
    // Read one chunk and hung up on: tenantry reads on to the usage.
    ("chat_abandoned", "gpt-4o-mini", "gpt-4o-mini", CHAT, true, [1300, 260, 0, 0, 0]),
    ("chat_stream_usage", "o4-mini", "o4-mini", CHAT, true, [2000, 500, 1000, 0, 300]),
    ("embeddings", "text-embedding-3-small", "text-embedding-3-small", "/v1/embeddings", false,
        [777, 0, 0, 0, 0]),
    ("responses", "gpt-4.1-mini", "gpt-4.1-mini", "/v1/responses", false, [1500, 300, 500, 0, 100]),
    ("responses_stream", "o3-mini", "o3-mini", "/v1/responses", true, [1234, 567, 234, 0, 67]),
    // Named `google/gemini-1.5-flash-8b`. 3 × 37.5 + 1 × 150 = 262.5 nano-USD: half to even, 262.
    ("gemini", "gemini-1.5-flash-8b", "gemini-1.5-flash-8b", CHAT, false, [3, 1, 0, 0, 0]),
    ("messages", "claude-3-5-haiku-latest", "claude-3-5-haiku", MESSAGES, false,
        [3200, 150, 2000, 300, 0]),
    // The key as `Authorization: Bearer` (the SDK's auth_token), not `x-api-key`.
    ("messages_bearer", "claude-3-5-haiku-latest", "claude-3-5-haiku", MESSAGES, false,
        [1111, 33, 500, 100, 0]),
    ("messages_stream", "claude-haiku-4-5-20251001", "claude-haiku-4-5", MESSAGES, true,
        [5050, 250, 4000, 1000, 0]),
    ("messages_stream_raw", "claude-3-7-sonnet-latest", "claude-3-7-sonnet", MESSAGES, true,
        [690, 90, 600, 20, 0]),
];

/// The `"fake"` object that makes the provider report `tokens` its own way: OpenAI counts
/// cached tokens inside the prompt, Anthropic's `input_tokens` leave the cache out.
pub fn fake_usage(path: &str, [input, output, read, write, reasoning]: [u64; 5]) -> Value {
    if path == MESSAGES {
        json!({"prompt_tokens": input - read - write, "completion_tokens": output,
               "cache_read": read, "cache_write": write})
    } else {
        json!({"prompt_tokens": input, "completion_tokens": output, "cached_tokens": read,
               "reasoning_tokens": reasoning})
    }
}

/// The contract's formula in nano-USD, rounded half to even: prices are micro-USD per
/// million tokens, so the sum is in 10^-3 nano-USD.
pub fn expected_nanos([input, output, read, write, _]: [u64; 5], model: &str) -> i128 {
    let &(_, p_in, p_out, p_read, p_write) = PRICES.iter().find(|p| p.0 == model).unwrap();
    let [input, output, read, write] = [input, output, read, write].map(i128::from);
    let milli = (input - read - write) * p_in
        + read * p_read.unwrap_or(p_in)
        + write * p_write.unwrap_or(p_in)
        + output * p_out;
    let (q, r) = (milli / 1000, milli % 1000);
    if r > 500 || (r == 500 && q % 2 == 1) {
        q + 1
    } else {
        q
    }
}

/// A plain decimal JSON number (as tenantry writes money) in units of 10^-`digits`, exactly.
pub fn scaled(v: &Value, digits: usize) -> i128 {
    let text = v.to_string();
    assert!(
        !text.contains(['e', 'E', '-']),
        "not a plain non-negative decimal: {text}"
    );
    let (whole, frac) = text.split_once('.').unwrap_or((&text, ""));
    assert!(frac.len() <= digits, "{text} has digits past 10^-{digits}");
    format!("{whole}{frac:0<digits$}").parse().unwrap()
}
