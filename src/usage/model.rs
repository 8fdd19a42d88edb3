//! A model's name as events and prices carry it: 1 to 255 visible characters, no spaces or
//! control characters. Parsed once at the edge; the pricing table is keyed by its text.
use std::fmt;

#[derive(Clone, Debug, PartialEq, Eq, Hash)]
pub struct ModelName(String);

/// The longest name an operator may set a price for; events accept up to 255 characters.
pub const MAX_PRICED_NAME: usize = 200;

impl ModelName {
    pub fn parse(s: String) -> Result<ModelName, String> {
        let n = s.chars().count();
        if n == 0 || n > 255 || s.chars().any(|c| c.is_control() || c.is_whitespace()) {
            return Err("model must be 1 to 255 visible characters without spaces".into());
        }
        Ok(ModelName(s))
    }

    /// A name an operator may set a price for (at most `MAX_PRICED_NAME` characters).
    pub fn parse_priced(s: String) -> Result<ModelName, String> {
        match ModelName::parse(s) {
            Ok(m) if m.0.chars().count() <= MAX_PRICED_NAME => Ok(m),
            _ => Err(format!(
                "model must be 1 to {MAX_PRICED_NAME} characters without spaces"
            )),
        }
    }

    /// What a usage event holds while its fields are being read, before `model` is; the
    /// parser refuses an event that ends without one, so this never leaves it.
    pub(super) fn missing() -> ModelName {
        ModelName(String::new())
    }

    pub fn as_str(&self) -> &str {
        &self.0
    }

    pub fn into_string(self) -> String {
        self.0
    }
}

impl fmt::Display for ModelName {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(&self.0)
    }
}

impl rusqlite::ToSql for ModelName {
    fn to_sql(&self) -> rusqlite::Result<rusqlite::types::ToSqlOutput<'_>> {
        self.0.to_sql()
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn names_are_bounded_and_visible() {
        assert!(ModelName::parse("gpt-4o-mini-2024-07-18".into()).is_ok());
        assert!(ModelName::parse("x".repeat(255)).is_ok());
        for bad in ["", "a b", "a\tb", "a\u{0}b"] {
            assert!(ModelName::parse(bad.into()).is_err(), "{bad:?}");
        }
        assert!(ModelName::parse("x".repeat(256)).is_err());
        assert!(ModelName::parse_priced("x".repeat(200)).is_ok());
        assert!(ModelName::parse_priced("x".repeat(201)).is_err());
    }
}
