//! `tenantry pricing import <file>`: a LiteLLM `model_prices_and_context_window.json` file as
//! operator prices, each per-token cost converted from its decimal text exactly, written in one
//! transaction with the server stopped (the server reads prices when it starts).
use super::model::ModelName;
use super::money::{MoneyError, Nanousd};
use super::pricing::{Price, MAX_PRICE_PER_MILLION};
use crate::config::Config;
use serde_json::Value;
use std::collections::BTreeMap;
use std::path::Path;

/// LiteLLM's example row, documenting the format; not a model.
const SAMPLE: &str = "sample_spec";

/// The modes whose prices are per token of a prompt and a completion, which is what a usage
/// event counts. Image, audio, moderation and rerank rows price other units.
const TOKEN_MODES: &[&str] = &["chat", "completion", "responses", "embedding"];

/// Why a row was not imported; the report counts each.
#[derive(Clone, Copy, Debug, PartialEq, Eq, PartialOrd, Ord)]
pub enum Skip {
    NotAnObject,
    Mode,
    Name,
    NoTokenCosts,
    NotANumber,
    OutOfBounds,
    TooPrecise,
}

impl Skip {
    pub fn describe(self) -> &'static str {
        match self {
            Skip::NotAnObject => "not an object",
            Skip::Mode => "mode other than chat/completion/responses/embedding",
            Skip::Name => "not a valid model name (1 to 200 characters, no spaces)",
            Skip::NoTokenCosts => "no input_cost_per_token or output_cost_per_token",
            Skip::NotANumber => "a cost that is not a non-negative number",
            Skip::OutOfBounds => "a price over 1000000 USD per million tokens",
            Skip::TooPrecise => "a cost finer than 1e-15 USD per token",
        }
    }
}

/// What a file holds: the prices to store, and how many rows were skipped for each reason.
#[derive(Debug, Default)]
pub struct Parsed {
    pub prices: Vec<(ModelName, Price)>,
    pub skipped: BTreeMap<Skip, usize>,
}

impl Parsed {
    /// The command's one line: imported, skipped, and the count of each reason.
    pub fn summary(&self) -> String {
        let skipped: usize = self.skipped.values().sum();
        let mut line = format!("imported {} prices, skipped {skipped}", self.prices.len());
        if skipped > 0 {
            let reasons: Vec<String> = self
                .skipped
                .iter()
                .map(|(why, n)| format!("{}: {n}", why.describe()))
                .collect();
            line.push_str(&format!(" ({})", reasons.join("; ")));
        }
        line
    }
}

/// A per-token cost as a price per million; `Ok(None)` when the row does not have it.
fn cost(row: &serde_json::Map<String, Value>, field: &str) -> Result<Option<Nanousd>, Skip> {
    match row.get(field) {
        None | Some(Value::Null) => Ok(None),
        Some(Value::Number(n)) => {
            Nanousd::per_million_from_per_token(n, Nanousd::from_nanos(MAX_PRICE_PER_MILLION))
                .map(Some)
                .map_err(|e| match e {
                    MoneyError::TooLarge => Skip::OutOfBounds,
                    MoneyError::Inexact => Skip::TooPrecise,
                    MoneyError::Negative | MoneyError::Invalid(_) => Skip::NotANumber,
                })
        }
        Some(_) => Err(Skip::NotANumber),
    }
}

fn row_price(name: &str, row: &Value) -> Result<(ModelName, Price), Skip> {
    let row = row.as_object().ok_or(Skip::NotAnObject)?;
    match row.get("mode") {
        None | Some(Value::Null) => {}
        Some(Value::String(m)) if TOKEN_MODES.contains(&m.as_str()) => {}
        Some(_) => return Err(Skip::Mode),
    }
    let model = ModelName::parse_priced(name.to_string()).map_err(|_| Skip::Name)?;
    let (input, output) = (
        cost(row, "input_cost_per_token")?,
        cost(row, "output_cost_per_token")?,
    );
    let (Some(input), Some(output)) = (input, output) else {
        return Err(Skip::NoTokenCosts);
    };
    let price = Price {
        input_per_million: input,
        output_per_million: output,
        cache_read_per_million: cost(row, "cache_read_input_token_cost")?,
        cache_write_per_million: cost(row, "cache_creation_input_token_cost")?,
    };
    Ok((model, price))
}

/// Reads a price file. A file that is not a JSON object of rows is refused whole; a row that
/// cannot be a price is skipped and counted.
pub fn parse(text: &str) -> Result<Parsed, String> {
    // serde_json keeps each number's text (`arbitrary_precision`), so no cost passes through
    // a binary float on its way to nano-USD.
    let doc: Value = serde_json::from_str(text).map_err(|e| format!("not JSON ({e})"))?;
    let Value::Object(rows) = doc else {
        return Err("not a LiteLLM price file (a JSON object of model names)".into());
    };
    let mut out = Parsed::default();
    for (name, row) in rows.iter().filter(|(name, _)| name.as_str() != SAMPLE) {
        match row_price(name, row) {
            Ok(p) => out.prices.push(p),
            Err(why) => *out.skipped.entry(why).or_default() += 1,
        }
    }
    Ok(out)
}

/// Imports `file` into the instance's price overrides, all rows or none. On SQLite with the
/// server stopped (the server reads its prices when it starts); on PostgreSQL while replicas
/// serve: the same transaction tells them to reload their prices.
pub fn import(config: &Config, file: &Path) -> Result<Parsed, String> {
    let text = std::fs::read_to_string(file)
        .map_err(|e| format!("cannot read {}: {e}", file.display()))?;
    let parsed = parse(&text).map_err(|e| format!("{}: {e}", file.display()))?;
    if let Some(url) = &config.database_url {
        crate::db::pg::block_on(import_pg(url.expose(), &parsed))??;
        return Ok(parsed);
    }
    // Into an instance that exists, as `tenant import`: a failed import leaves nothing behind.
    if !config.db_path().exists() {
        return Err(format!(
            "no database at {}; start tenantry once (or run tenantry migrate) first",
            config.db_path().display()
        ));
    }
    let _lock = crate::db::lock::CommandLock::acquire(&config.data_dir)?;
    let db = crate::db::Db::open(&config.db_path(), config.sync_full)?;
    let mut c = db.conn().map_err(|e| e.to_string())?;
    let now = chrono::Utc::now().timestamp_micros();
    let tx = c.transaction().map_err(|e| e.to_string())?;
    for (model, price) in &parsed.prices {
        super::store::set_price_override(&tx, model.as_str(), *price, now)
            .map_err(|e| format!("cannot store the price of {model}: {e}"))?;
    }
    tx.commit().map_err(|e| e.to_string())?;
    Ok(parsed)
}

async fn import_pg(url: &str, parsed: &Parsed) -> Result<(), String> {
    use crate::db::pg::{describe, notify};
    let fail = |e: tokio_postgres::Error| format!("cannot store the prices: {}", describe(&e));
    let pg = crate::db::pg::Pg::open(url, 1).await?;
    let mut c = pg.client().await?;
    let now = chrono::Utc::now().timestamp_micros();
    let tx = c.transaction().await.map_err(fail)?;
    for (model, price) in &parsed.prices {
        super::pg_reads::set_price_override(&*tx, model.as_str(), *price, now)
            .await
            .map_err(fail)?;
    }
    notify::notify(&*tx, &notify::Invalidation::Prices)
        .await
        .map_err(fail)?;
    tx.commit().await.map_err(fail)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn rows_become_exact_prices_and_the_rest_is_counted_by_reason() {
        let text = r#"{
            "sample_spec": {"input_cost_per_token": 0.0, "output_cost_per_token": 0.0, "mode": "chat"},
            "claude-x": {"input_cost_per_token": 3e-06, "output_cost_per_token": 1.5e-05,
                         "cache_read_input_token_cost": 3E-7, "cache_creation_input_token_cost": 3.75e-06,
                         "litellm_provider": "anthropic", "mode": "chat"},
            "openai/embed": {"input_cost_per_token": 2e-08, "output_cost_per_token": 0, "mode": "embedding"},
            "dall-e": {"input_cost_per_pixel": 1e-08, "output_cost_per_token": 0, "mode": "image_generation"},
            "no-output": {"input_cost_per_token": 1e-06, "mode": "chat"},
            "has space": {"input_cost_per_token": 1e-06, "output_cost_per_token": 1e-06},
            "dear": {"input_cost_per_token": 2, "output_cost_per_token": 1e-06},
            "fine": {"input_cost_per_token": 1e-06, "output_cost_per_token": 3e-16},
            "text": {"input_cost_per_token": "1e-06", "output_cost_per_token": 1e-06},
            "list": [1, 2]
        }"#;
        let p = parse(text).unwrap();
        let prices: BTreeMap<&str, Price> =
            p.prices.iter().map(|(m, p)| (m.as_str(), *p)).collect();
        assert_eq!(prices.len(), 2, "{prices:?}");
        let claude = prices["claude-x"];
        assert_eq!(claude.input_per_million, Nanousd::from_nanos(3_000_000_000));
        assert_eq!(
            claude.output_per_million,
            Nanousd::from_nanos(15_000_000_000)
        );
        assert_eq!(
            claude.cache_read_per_million,
            Some(Nanousd::from_nanos(300_000_000))
        );
        assert_eq!(
            claude.cache_write_per_million,
            Some(Nanousd::from_nanos(3_750_000_000))
        );
        let embed = prices["openai/embed"];
        assert_eq!(embed.input_per_million, Nanousd::from_nanos(20_000_000));
        assert_eq!(embed.cache_read_per_million, None);
        let want: BTreeMap<Skip, usize> = [
            (Skip::NotAnObject, 1),
            (Skip::Mode, 1),
            (Skip::Name, 1),
            (Skip::NoTokenCosts, 1),
            (Skip::NotANumber, 1),
            (Skip::OutOfBounds, 1),
            (Skip::TooPrecise, 1),
        ]
        .into();
        assert_eq!(p.skipped, want);
        let line = p.summary();
        assert!(line.starts_with("imported 2 prices, skipped 7 ("), "{line}");
        assert!(!line.contains('\n'));
    }

    #[test]
    fn a_file_that_is_not_an_object_of_rows_is_refused() {
        for bad in ["", "{", "[1]", "\"x\"", "{\"a\": 1,}"] {
            assert!(parse(bad).is_err(), "{bad:?}");
        }
        assert_eq!(
            parse("{}").unwrap().summary(),
            "imported 0 prices, skipped 0"
        );
    }
}
