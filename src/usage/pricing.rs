//! Model prices in nano-USD per million tokens: built-in list prices, overridden by the operator
//! (`PUT /api/pricing/{model}`, kept in `pricing_overrides`). Held in memory; a lookup falls back
//! from a dated variant (`gpt-4o-mini-2024-07-18`) to its base model (`gpt-4o-mini`).
use super::money::{div_round_half_even, Nanousd};
use rusqlite::Connection;
use std::collections::HashMap;
use std::sync::{Arc, RwLock};

/// The highest price accepted: a million USD per million tokens (the contract's bound).
pub const MAX_PRICE_PER_MILLION: i64 = 1_000_000 * super::money::NANOS_PER_USD;

#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct Price {
    pub input_per_million: Nanousd,
    pub output_per_million: Nanousd,
    /// Prompt tokens read from the provider's cache; `None`: the input price applies.
    pub cache_read_per_million: Option<Nanousd>,
    /// Prompt tokens written to the provider's cache; `None`: the input price applies.
    pub cache_write_per_million: Option<Nanousd>,
}

impl Price {
    /// Input and output prices, no cache prices of its own.
    pub const fn new(input_per_million: Nanousd, output_per_million: Nanousd) -> Price {
        Price {
            input_per_million,
            output_per_million,
            cache_read_per_million: None,
            cache_write_per_million: None,
        }
    }

    /// What a cache read costs: its own price, else the input price.
    pub fn cache_read(&self) -> Nanousd {
        self.cache_read_per_million
            .unwrap_or(self.input_per_million)
    }

    /// What a cache write costs: its own price, else the input price.
    pub fn cache_write(&self) -> Nanousd {
        self.cache_write_per_million
            .unwrap_or(self.input_per_million)
    }

    /// With a cache read price, in whole micro-dollars per million tokens.
    const fn read(mut self, micro: i64) -> Price {
        self.cache_read_per_million = Some(Nanousd::from_nanos(micro * 1000));
        self
    }

    /// With a cache write price, in whole micro-dollars per million tokens.
    const fn write(mut self, micro: i64) -> Price {
        self.cache_write_per_million = Some(Nanousd::from_nanos(micro * 1000));
        self
    }
}

/// USD per million tokens, written as whole micro-dollars so no float is involved.
const fn micro(input: i64, output: i64) -> Price {
    Price::new(
        Nanousd::from_nanos(input * 1000),
        Nanousd::from_nanos(output * 1000),
    )
}

/// An event's token counts as the cost formula splits them. `input` counts every prompt token;
/// the cached ones are part of it (the event parser guarantees `cache_read + cache_write <=
/// input`).
#[derive(Clone, Copy, Debug, Default)]
pub struct Tokens {
    pub input: u64,
    pub cache_read: u64,
    pub cache_write: u64,
    pub output: u64,
}

/// List prices (standard tier, no batch discounts, the lowest context tier where a provider has
/// several); operators correct or extend them with `PUT /api/pricing/{model}`.
///
/// Cache prices, where set: OpenAI's cached input price (50% of input for the gpt-4o and o1
/// families, 25% for gpt-4.1, o3 and o4-mini, 10% for gpt-5; OpenAI charges nothing extra for
/// writing the cache, so the write price is the input price); Anthropic's cache hits (10% of
/// input; Claude 3 Haiku $0.03) and 5-minute cache writes (125% of input; Claude 3 Haiku $0.30).
/// Google's context caching also bills storage per hour, which no event carries, and Mistral
/// publishes no cache price: their cache prices are the input price.
///
/// Every row was checked on 2026-11-29 against the source its comment names, and against
/// LiteLLM's `model_prices_and_context_window.json` (PyPI litellm 1.110.2, the same day) where
/// that file still lists the model. Abbreviations: "OpenAI" is
/// developers.openai.com (pricing and model pages), "Anthropic" is
/// docs.anthropic.com/en/docs/about-claude/pricing, "Google" is ai.google.dev/gemini-api/docs/pricing,
/// "Mistral" is mistral.ai/pricing, "LiteLLM" the file above.
/// Embedding models are billed on input only: their output price is 0.
pub const BUILTIN: &[(&str, Price)] = &[
    // OpenAI; all: OpenAI, LiteLLM (`gpt-4o`, ... provider openai), 2026-11-29.
    ("gpt-4o", micro(2_500_000, 10_000_000).read(1_250_000)),
    ("gpt-4o-mini", micro(150_000, 600_000).read(75_000)),
    ("gpt-4.1", micro(2_000_000, 8_000_000).read(500_000)),
    ("gpt-4.1-mini", micro(400_000, 1_600_000).read(100_000)),
    ("gpt-4.1-nano", micro(100_000, 400_000).read(25_000)),
    ("gpt-5", micro(1_250_000, 10_000_000).read(125_000)),
    ("gpt-5-mini", micro(250_000, 2_000_000).read(25_000)),
    ("gpt-5-nano", micro(50_000, 400_000).read(5_000)),
    ("o1", micro(15_000_000, 60_000_000).read(7_500_000)),
    // OpenAI (cut from $3/$12 in late 2024); LiteLLM lists it only under azure now, same price.
    ("o1-mini", micro(1_100_000, 4_400_000).read(550_000)),
    // The dated first release of gpt-4o kept its launch price. OpenAI, LiteLLM, 2026-11-29.
    ("gpt-4o-2024-05-13", micro(5_000_000, 15_000_000)),
    // o3 since its June 2025 price cut. OpenAI, LiteLLM, 2026-11-29.
    ("o3", micro(2_000_000, 8_000_000).read(500_000)),
    ("o3-mini", micro(1_100_000, 4_400_000).read(550_000)),
    ("o4-mini", micro(1_100_000, 4_400_000).read(275_000)),
    // OpenAI embeddings, input only. OpenAI, LiteLLM (output 0), 2026-11-29.
    ("text-embedding-3-small", micro(20_000, 0)),
    ("text-embedding-3-large", micro(130_000, 0)),
    ("text-embedding-ada-002", micro(100_000, 0)),
    // Anthropic; all: Anthropic, 2026-11-29. LiteLLM has dropped most retired Claude 3 rows
    // from its anthropic provider; where it lists them (vertex_ai, bedrock) the price is the same.
    (
        "claude-3-haiku",
        micro(250_000, 1_250_000).read(30_000).write(300_000),
    ),
    // Anthropic's own price; LiteLLM's vertex_ai row ($1/$5) is Google's resale price.
    (
        "claude-3-5-haiku",
        micro(800_000, 4_000_000).read(80_000).write(1_000_000),
    ),
    (
        "claude-3-5-sonnet",
        micro(3_000_000, 15_000_000).read(300_000).write(3_750_000),
    ),
    (
        "claude-3-7-sonnet",
        micro(3_000_000, 15_000_000).read(300_000).write(3_750_000),
    ),
    (
        "claude-haiku-4-5",
        micro(1_000_000, 5_000_000).read(100_000).write(1_250_000),
    ),
    (
        "claude-sonnet-4",
        micro(3_000_000, 15_000_000).read(300_000).write(3_750_000),
    ),
    // At most 200k input tokens; longer prompts cost more ($6/$22.50), not modelled here.
    (
        "claude-sonnet-4-5",
        micro(3_000_000, 15_000_000).read(300_000).write(3_750_000),
    ),
    (
        "claude-opus-4",
        micro(15_000_000, 75_000_000)
            .read(1_500_000)
            .write(18_750_000),
    ),
    (
        "claude-opus-4-1",
        micro(15_000_000, 75_000_000)
            .read(1_500_000)
            .write(18_750_000),
    ),
    // Without its own row, `claude-opus-4-5` would fall back to `claude-opus-4` at 3x its price.
    (
        "claude-opus-4-5",
        micro(5_000_000, 25_000_000).read(500_000).write(6_250_000),
    ),
    (
        "claude-3-opus",
        micro(15_000_000, 75_000_000)
            .read(1_500_000)
            .write(18_750_000),
    ),
    // Claude 3 Sonnet (`claude-3-sonnet-20240229`, retired): Anthropic's last list price;
    // LiteLLM vertex_ai/claude-3-sonnet agrees. 2026-11-29.
    ("claude-3-sonnet", micro(3_000_000, 15_000_000)),
    // Google (Gemini API, paid tier, prompts up to the lowest context tier).
    // Gemini 1.5 (retired in 2025; no longer in LiteLLM): Google's last list prices for
    // prompts up to 128k tokens, as recorded by third-party price pages, 2026-11-29.
    ("gemini-1.5-flash", micro(75_000, 300_000)),
    ("gemini-1.5-flash-8b", micro(37_500, 150_000)),
    ("gemini-1.5-pro", micro(1_250_000, 5_000_000)),
    // Google (2.0 Flash deprecated, same price as 2.5 Flash-Lite), 2026-11-29.
    ("gemini-2.0-flash", micro(100_000, 400_000)),
    // Google; LiteLLM vertex_ai/gemini-2.0-flash-lite agrees, 2026-11-29.
    ("gemini-2.0-flash-lite", micro(75_000, 300_000)),
    // Google, LiteLLM (gemini/...), 2026-11-29. 2.5 Pro: prompts up to 200k tokens.
    ("gemini-2.5-flash", micro(300_000, 2_500_000)),
    ("gemini-2.5-flash-lite", micro(100_000, 400_000)),
    ("gemini-2.5-pro", micro(1_250_000, 10_000_000)),
    // Google embeddings, input only. gemini-embedding-001: Google, LiteLLM, 2026-11-29.
    ("gemini-embedding-001", micro(150_000, 0)),
    // text-embedding-004: free of charge on the Gemini API; on Vertex AI $0.000025 per 1,000
    // characters, which LiteLLM (vertex_ai-embedding-models) converts to $0.10 per million
    // tokens; metered at that price, 2026-11-29. An operator on the free tier sets it to 0.
    ("text-embedding-004", micro(100_000, 0)),
    // Mistral: the `-latest` aliases move to new models, and their prices with them. Checked
    // against LiteLLM (mistral/...-latest) and Mistral, 2026-11-29: mistral-large-latest is
    // Mistral Large 3 (was $2/$6 for Large 2), mistral-medium-latest is Medium 3.5 (was
    // $0.40/$2 for Medium 3), mistral-small-latest is Small 4 (was $0.10/$0.30),
    // ministral-8b-latest is Ministral 3 8B (was $0.10/$0.10), codestral-latest is 25.08.
    ("mistral-large-latest", micro(500_000, 1_500_000)),
    ("mistral-medium-latest", micro(1_500_000, 7_500_000)),
    ("mistral-small-latest", micro(150_000, 600_000)),
    ("codestral-latest", micro(300_000, 900_000)),
    ("ministral-8b-latest", micro(150_000, 150_000)),
];

/// The cost of a call, as the contract writes it, prices per million tokens:
///
/// ```text
/// (input - cache_read - cache_write) × input price + cache_read × cache read price
///   + cache_write × cache write price + output × output price
/// ```
///
/// Every product is exact in i128 (at most 10^12 tokens × 10^15 nano-USD), the sum is rounded
/// half to even once; `None` when it does not fit in nano-USD (10^12 tokens at a price of a
/// million dollars), or when the cached tokens exceed the input (never, for a parsed event).
pub fn cost(t: Tokens, p: Price) -> Option<Nanousd> {
    let uncached = t
        .input
        .checked_sub(t.cache_read)?
        .checked_sub(t.cache_write)?;
    let term = |tokens: u64, price: Nanousd| i128::from(tokens) * i128::from(price.nanos());
    let num = term(uncached, p.input_per_million)
        + term(t.cache_read, p.cache_read())
        + term(t.cache_write, p.cache_write())
        + term(t.output, p.output_per_million);
    i64::try_from(div_round_half_even(num, 1_000_000))
        .ok()
        .map(Nanousd::from_nanos)
}

/// Exact name first, then the name cut back at each `-` from the right, so the longest known
/// base wins and `gpt-4oX` never matches `gpt-4o`.
pub fn lookup<'a>(table: &'a HashMap<String, Price>, model: &str) -> Option<(&'a str, Price)> {
    let mut name = model;
    loop {
        if let Some((k, p)) = table.get_key_value(name) {
            return Some((k.as_str(), *p));
        }
        name = &name[..name.rfind('-')?];
    }
}

/// The effective table: built-in prices with the operator's overrides on top.
pub struct PricingTable(RwLock<Arc<HashMap<String, Price>>>);

impl PricingTable {
    pub fn load(c: &Connection) -> rusqlite::Result<PricingTable> {
        let mut map: HashMap<String, Price> =
            BUILTIN.iter().map(|(m, p)| (m.to_string(), *p)).collect();
        map.extend(super::store::price_overrides(c)?);
        Ok(PricingTable(RwLock::new(Arc::new(map))))
    }

    /// As `load`, from PostgreSQL.
    pub async fn load_pg(c: &impl tokio_postgres::GenericClient) -> Result<PricingTable, String> {
        let mut map: HashMap<String, Price> =
            BUILTIN.iter().map(|(m, p)| (m.to_string(), *p)).collect();
        let rows = c
            .query(
                "SELECT model, input_usd_per_million_nanos, output_usd_per_million_nanos,
                        cache_read_usd_per_million_nanos, cache_write_usd_per_million_nanos
                 FROM pricing_overrides",
                &[],
            )
            .await
            .map_err(|e| crate::db::pg::describe(&e))?;
        for r in rows {
            map.insert(
                r.get(0),
                Price {
                    input_per_million: Nanousd::from_nanos(r.get(1)),
                    output_per_million: Nanousd::from_nanos(r.get(2)),
                    cache_read_per_million: r.get::<_, Option<i64>>(3).map(Nanousd::from_nanos),
                    cache_write_per_million: r.get::<_, Option<i64>>(4).map(Nanousd::from_nanos),
                },
            );
        }
        Ok(PricingTable(RwLock::new(Arc::new(map))))
    }

    /// Replaces the table with the built-in prices and the overrides stored in PostgreSQL (a
    /// price set on another replica).
    pub async fn reload_pg(&self, c: &impl tokio_postgres::GenericClient) -> Result<(), String> {
        let fresh = PricingTable::load_pg(c).await?.snapshot();
        *self.0.write().expect("pricing lock is never poisoned") = fresh;
        Ok(())
    }

    pub fn snapshot(&self) -> Arc<HashMap<String, Price>> {
        self.0
            .read()
            .expect("pricing lock is never poisoned")
            .clone()
    }

    /// Stores an override; the caller holds the state's write lock, so the swap cannot race.
    pub fn set(&self, c: &Connection, model: &str, price: Price, at: i64) -> rusqlite::Result<()> {
        super::store::set_price_override(c, model, price, at)?;
        self.put(model, price);
        Ok(())
    }

    /// Takes a stored override into the table in memory (after its commit, or when another
    /// replica says it changed).
    pub fn put(&self, model: &str, price: Price) {
        let mut guard = self.0.write().expect("pricing lock is never poisoned");
        let mut next = (**guard).clone();
        next.insert(model.to_string(), price);
        *guard = Arc::new(next);
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn io(input: u64, output: u64) -> Tokens {
        Tokens {
            input,
            output,
            ..Tokens::default()
        }
    }

    fn table() -> HashMap<String, Price> {
        BUILTIN.iter().map(|(m, p)| (m.to_string(), *p)).collect()
    }

    #[test]
    fn a_fraction_of_a_cent_per_token_is_exact() {
        let p = Price::new(Nanousd::from_nanos(150_000_000), Nanousd::ZERO);
        assert_eq!(cost(io(1, 0), p), Some(Nanousd::from_nanos(150))); // $0.15/M on 1 token = $0.00000015
        let p = Price::new(Nanousd::from_nanos(37_500_000), Nanousd::ZERO);
        assert_eq!(cost(io(1, 0), p), Some(Nanousd::from_nanos(38))); // 37.5 nano, half to even
        assert_eq!(cost(io(3, 0), p), Some(Nanousd::from_nanos(112))); // 112.5 -> 112
        assert_eq!(
            cost(io(1_000_000, 1_000_000), micro(2_500_000, 10_000_000)),
            Some(Nanousd::from_nanos(12_500_000_000))
        );
    }

    #[test]
    fn a_cost_past_what_nano_usd_can_hold_is_none() {
        let top = Price::new(
            Nanousd::from_nanos(MAX_PRICE_PER_MILLION),
            Nanousd::from_nanos(MAX_PRICE_PER_MILLION),
        );
        // 10^12 tokens at $10^6 per million: $10^12, beyond i64 nano-USD (about $9.2 × 10^9).
        assert_eq!(cost(io(1_000_000_000_000, 0), top), None);
        // At that price a token costs a dollar: the last whole token that fits, and one more.
        assert_eq!(
            cost(io(9_223_372_036, 0), top),
            Some(Nanousd::from_nanos(9_223_372_036_000_000_000))
        );
        assert_eq!(cost(io(9_223_372_037, 0), top), None);
    }

    #[test]
    fn cached_tokens_are_charged_at_their_own_price_or_the_input_price() {
        // $2.50 in, $10 out, cache reads $1.25, cache writes $3.125 per million.
        let p = micro(2_500_000, 10_000_000)
            .read(1_250_000)
            .write(3_125_000);
        let t = Tokens {
            input: 1000,
            cache_read: 600,
            cache_write: 100,
            output: 7,
        };
        // 300 × 2500 + 600 × 1250 + 100 × 3125 + 7 × 10000 nano-USD.
        assert_eq!(
            cost(t, p),
            Some(Nanousd::from_nanos(750_000 + 750_000 + 312_500 + 70_000))
        );
        // Without cache prices every prompt token costs the input price.
        assert_eq!(
            cost(t, micro(2_500_000, 10_000_000)),
            cost(io(1000, 7), micro(2_500_000, 10_000_000))
        );
        // One rounding of the exact sum: 3 × 0.5 nano-USD is 1.5, rounded to 2, where rounding
        // each term would give 0 + 0 + 0.
        let half = Price::new(Nanousd::from_nanos(500_000), Nanousd::ZERO)
            .read(500)
            .write(500);
        let t = Tokens {
            input: 3,
            cache_read: 1,
            cache_write: 1,
            output: 0,
        };
        assert_eq!(cost(t, half), Some(Nanousd::from_nanos(2)));
        // Cached tokens beyond the input are not a cost at all.
        let bad = Tokens {
            cache_read: 2,
            ..io(1, 0)
        };
        assert_eq!(cost(bad, p), None);
    }

    #[test]
    fn dated_variants_fall_back_to_the_longest_base() {
        let t = table();
        assert_eq!(
            lookup(&t, "gpt-4o-mini-2024-07-18").unwrap().0,
            "gpt-4o-mini"
        );
        assert_eq!(lookup(&t, "gpt-4o-2024-08-06").unwrap().0, "gpt-4o");
        assert_eq!(
            lookup(&t, "claude-sonnet-4-5-20250929").unwrap().0,
            "claude-sonnet-4-5"
        );
        assert_eq!(lookup(&t, "gpt-4o").unwrap().0, "gpt-4o");
        assert_eq!(
            lookup(&t, "claude-opus-4-5-20251101").unwrap().0,
            "claude-opus-4-5"
        );
        assert!(lookup(&t, "gpt-4oX").is_none());
        assert!(lookup(&t, "llama-3").is_none());
        assert!(lookup(&t, "").is_none());
    }

    /// Every model is billed for its input; only embedding models produce no output tokens,
    /// so only they may have an output price of 0.
    #[test]
    fn builtin_names_are_unique_and_priced() {
        assert_eq!(table().len(), BUILTIN.len());
        for (model, p) in BUILTIN {
            assert!(p.input_per_million.nanos() > 0, "{model}: no input price");
            // A cache read is a discount, never dearer than sending the tokens again.
            assert!(
                p.cache_read() <= p.input_per_million,
                "{model}: cache read dearer than input"
            );
            assert!(
                p.cache_write() >= p.input_per_million,
                "{model}: cache write cheaper than input"
            );
            assert!(
                p.output_per_million.nanos() > 0 || model.contains("embedding"),
                "{model}: no output price, and it is not an embedding model"
            );
        }
    }

    #[test]
    fn embedding_models_and_claude_3_sonnet_are_priced() {
        let t = table();
        for (model, expect) in [
            ("text-embedding-3-small", Nanousd::from_nanos(20_000)),
            ("text-embedding-3-large", Nanousd::from_nanos(130_000)),
            ("text-embedding-ada-002", Nanousd::from_nanos(100_000)),
            ("text-embedding-004", Nanousd::from_nanos(100_000)),
            ("gemini-embedding-001", Nanousd::from_nanos(150_000)),
            (
                "claude-3-sonnet-20240229",
                Nanousd::from_nanos(3_000_000 + 15_000_000),
            ),
        ] {
            let (_, p) = lookup(&t, model).unwrap_or_else(|| panic!("{model} has no price"));
            let out = if model.contains("embedding") { 0 } else { 1000 };
            // 1000 input tokens (and 1000 output for a chat model): $0.02/M is 20,000 nano-USD.
            assert_eq!(cost(io(1000, out), p), Some(expect), "{model}");
        }
    }
}
