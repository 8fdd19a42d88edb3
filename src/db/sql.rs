//! Small helpers shared by the repositories.
use crate::error::ApiError;

pub fn is_unique_violation(e: &rusqlite::Error) -> bool {
    matches!(e, rusqlite::Error::SqliteFailure(f, _)
        if f.extended_code == rusqlite::ffi::SQLITE_CONSTRAINT_UNIQUE
            || f.extended_code == rusqlite::ffi::SQLITE_CONSTRAINT_PRIMARYKEY)
}

/// Maps a unique violation to 409 `conflict` with `what`, anything else to an internal error.
pub fn conflict_on_unique(e: rusqlite::Error, what: &str) -> ApiError {
    if is_unique_violation(&e) {
        ApiError::Conflict(what.to_string())
    } else {
        e.into()
    }
}

pub fn parse_uuid_column(s: String) -> rusqlite::Result<uuid::Uuid> {
    uuid::Uuid::parse_str(&s).map_err(|e| {
        rusqlite::Error::FromSqlConversionFailure(0, rusqlite::types::Type::Text, Box::new(e))
    })
}
