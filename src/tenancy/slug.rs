//! Tenant slugs: 3 to 63 characters of `a-z 0-9 -`, and never a UUID (a path segment that names
//! a tenant must mean one thing).
use std::fmt;

#[derive(Clone, Debug, PartialEq, Eq, Hash)]
pub struct Slug(String);

impl Slug {
    pub fn parse(s: &str) -> Result<Slug, String> {
        let len = s.chars().count();
        if !(3..=63).contains(&len) {
            return Err("slug must be 3 to 63 characters".into());
        }
        if !s
            .chars()
            .all(|c| c.is_ascii_lowercase() || c.is_ascii_digit() || c == '-')
        {
            return Err("slug may hold only a-z, 0-9 and -".into());
        }
        if uuid::Uuid::parse_str(s).is_ok() {
            return Err("slug may not be a UUID".into());
        }
        Ok(Slug(s.to_string()))
    }

    /// A slug from a display name: lower-cased, runs of other characters become one `-`,
    /// trimmed to 63; padded when too short. The caller still checks uniqueness.
    pub fn derive(name: &str) -> Slug {
        let mut out = String::new();
        for c in name.chars().flat_map(|c| c.to_lowercase()) {
            if c.is_ascii_lowercase() || c.is_ascii_digit() {
                out.push(c);
            } else if !out.ends_with('-') && !out.is_empty() {
                out.push('-');
            }
        }
        out.truncate(63);
        let mut out = out.trim_matches('-').to_string();
        if out.len() < 3 {
            if !out.is_empty() {
                out.push('-');
            }
            out.push_str("tenant");
        }
        Slug::parse(&out).unwrap_or_else(|_| Slug("tenant".into()))
    }

    /// The same slug with a numeric suffix, kept within 63 characters.
    pub fn with_suffix(&self, n: u32) -> Slug {
        let suffix = format!("-{n}");
        let mut base = self.0.clone();
        base.truncate(63 - suffix.len());
        Slug(format!("{}{suffix}", base.trim_end_matches('-')))
    }

    pub fn as_str(&self) -> &str {
        &self.0
    }
}

impl fmt::Display for Slug {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(&self.0)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn accepts_contract_slugs() {
        for s in ["abc", "acme-corp", "a1-", "-x-", &"a".repeat(63)] {
            assert!(Slug::parse(s).is_ok(), "{s}");
        }
    }

    #[test]
    fn refuses_bad_slugs() {
        for s in [
            "ab",
            "",
            "Acme",
            "acme_corp",
            "acme corp",
            "ächt",
            &"a".repeat(64),
        ] {
            assert!(Slug::parse(s).is_err(), "{s}");
        }
        assert!(Slug::parse("00000000-0000-0000-0000-000000000000").is_err());
    }

    #[test]
    fn derives_from_names() {
        assert_eq!(Slug::derive("Acme Corp, Inc.").as_str(), "acme-corp-inc");
        assert_eq!(Slug::derive("AI").as_str(), "ai-tenant");
        assert_eq!(Slug::derive("!!!").as_str(), "tenant");
        let long = Slug::derive(&"Long ".repeat(40));
        assert!(long.as_str().len() <= 63 && !long.as_str().ends_with('-'));
        assert!(Slug::parse(Slug::derive("Émile's Café").as_str()).is_ok());
    }

    #[test]
    fn suffix_keeps_length() {
        let s = Slug::parse(&"a".repeat(63)).unwrap();
        let t = s.with_suffix(12);
        assert!(t.as_str().ends_with("-12"));
        assert!(Slug::parse(t.as_str()).is_ok());
    }
}
