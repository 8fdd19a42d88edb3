//! Keyset pagination: `?limit=` and an opaque `?cursor=` that encodes the sort key of the last
//! item served, so a page never skips or repeats rows however the table grows.
use crate::error::ApiError;
use base64::engine::general_purpose::URL_SAFE_NO_PAD;
use base64::Engine;
use serde::de::DeserializeOwned;
use serde::{Deserialize, Serialize};

pub const DEFAULT_LIMIT: u32 = 50;
pub const MAX_LIMIT: u32 = 1000;

/// A validated page request.
#[derive(Clone, Debug)]
pub struct PageRequest<K> {
    pub limit: u32,
    pub after: Option<K>,
}

impl<K: DeserializeOwned> PageRequest<K> {
    pub fn parse(limit: Option<u32>, cursor: Option<&str>) -> Result<Self, ApiError> {
        let limit = limit.unwrap_or(DEFAULT_LIMIT);
        if !(1..=MAX_LIMIT).contains(&limit) {
            return Err(ApiError::InvalidRequest(format!(
                "limit must be between 1 and {MAX_LIMIT}"
            )));
        }
        let after = match cursor.filter(|c| !c.is_empty()) {
            None => None,
            Some(c) => Some(decode(c)?),
        };
        Ok(PageRequest { limit, after })
    }

    /// How many rows to fetch: one more than the page, to learn whether another page exists.
    pub fn fetch(&self) -> i64 {
        i64::from(self.limit) + 1
    }
}

#[derive(Serialize, Debug)]
pub struct Page<T> {
    pub items: Vec<T>,
    pub next_cursor: Option<String>,
}

impl<T> Page<T> {
    /// Builds a page from up to `limit + 1` rows; `key` gives the sort key of a row.
    pub fn from_rows<K: Serialize>(mut rows: Vec<T>, limit: u32, key: impl Fn(&T) -> K) -> Page<T> {
        let more = rows.len() > limit as usize;
        rows.truncate(limit as usize);
        let next_cursor = if more {
            rows.last().map(|r| encode(&key(r)))
        } else {
            None
        };
        Page {
            items: rows,
            next_cursor,
        }
    }

    pub fn map<U>(self, f: impl FnMut(T) -> U) -> Page<U> {
        Page {
            items: self.items.into_iter().map(f).collect(),
            next_cursor: self.next_cursor,
        }
    }
}

fn encode<K: Serialize>(key: &K) -> String {
    URL_SAFE_NO_PAD.encode(serde_json::to_vec(key).expect("cursor keys are plain data"))
}

fn decode<K: DeserializeOwned>(c: &str) -> Result<K, ApiError> {
    let bad = || ApiError::InvalidRequest("cursor is not one this server issued".into());
    let bytes = URL_SAFE_NO_PAD.decode(c).map_err(|_| bad())?;
    serde_json::from_slice(&bytes).map_err(|_| bad())
}

/// The query string every list accepts besides its own filters.
#[derive(Deserialize, Debug, Default)]
#[serde(deny_unknown_fields)]
pub struct PageQuery {
    pub limit: Option<u32>,
    pub cursor: Option<String>,
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn cursor_round_trips() {
        let rows = vec![(1i64, "a"), (2, "b"), (3, "c")];
        let page = Page::from_rows(rows, 2, |r| (r.0, r.1.to_string()));
        assert_eq!(page.items.len(), 2);
        let c = page.next_cursor.unwrap();
        let req: PageRequest<(i64, String)> = PageRequest::parse(Some(2), Some(&c)).unwrap();
        assert_eq!(req.after, Some((2, "b".to_string())));
    }

    #[test]
    fn last_page_has_no_cursor() {
        let page = Page::from_rows(vec![1, 2], 2, |r| *r);
        assert!(page.next_cursor.is_none());
    }

    #[test]
    fn limits_and_garbage_cursors_are_refused() {
        assert!(PageRequest::<i64>::parse(Some(0), None).is_err());
        assert!(PageRequest::<i64>::parse(Some(1001), None).is_err());
        assert!(PageRequest::<i64>::parse(None, Some("%%%")).is_err());
        assert!(PageRequest::<(i64, String)>::parse(None, Some("bm90anNvbg")).is_err());
    }
}
