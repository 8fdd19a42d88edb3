//! What the command line writes for the operator: each message one line on stderr, plain
//! (`tenantry: ...`) or, with `TENANTRY_LOG_FORMAT=json`, one JSON object shaped like the log
//! lines, so a log shipper never meets a line it cannot parse. Also the log setup and the
//! process umask.
use crate::config::LogFormat;
use serde_json::{json, Map, Value};
use std::io::{IsTerminal, Write};
use std::sync::OnceLock;

static FORMAT: OnceLock<LogFormat> = OnceLock::new();

/// Every variable tenantry reads, for `--help`; a test checks it names each one in `src/`.
pub const ENVIRONMENT_HELP: &str = "\
Configuration comes from the environment (an unknown value stops the start with one line):
  TENANTRY_BIND              address to listen on (127.0.0.1:8080)
  TENANTRY_DATA_DIR          data directory, created 0700 (./data)
  TENANTRY_DATABASE_URL      postgres://user:password@host:5432/db: PostgreSQL instead of the
                             SQLite file, for several replicas (docs/SCALE_OUT.md)
  TENANTRY_ADMIN_TOKEN       admin token, at least 16 characters; replaces the stored one
                             (unset: generated on first start and shown once)
  ENCRYPTION_KEY             secret that seals provider keys, at least 16 characters
                             (unset: generated into encryption.key in the data directory)
  ENCRYPTION_KEY_OLD         the previous ENCRYPTION_KEY, read by rotate-encryption-key only
  TENANTRY_PROVIDER_KEY_<PROVIDER>
                             the instance's own provider key for hosted mode
                             (TENANTRY_PROVIDER_KEY_OPENAI)
  ENABLE_MULTI_TENANT        true or false (false)
  ENABLE_USAGE_TRACKING      true or false (true)
  ENABLE_HOSTED_QUEUE        true or false (false)
  ENABLE_BILLING             true or false (false)
  TENANTRY_SYNC              normal (survives a crash) or full (survives power loss) (normal)
  TENANTRY_BACKUP_INTERVAL   scheduled backups into <data dir>/backups, e.g. 6h (off)
  TENANTRY_BACKUP_KEEP       scheduled backups kept (7)
  TENANTRY_EVENTS_RETENTION_DAYS  days operational events are kept; 0: forever (90)
  TENANTRY_USAGE_RETENTION_DAYS  days raw usage events are kept before today; the daily
                             totals stay; 0: forever (0)
  TENANTRY_PURGE_INACTIVE_DAYS  days after deactivation a tenant is deleted with all it
                             owns; 0: never (0)
  TENANTRY_BODY_TIMEOUT      time a request body may take to arrive, e.g. 30s (30s)
  TENANTRY_WEBHOOK_ALLOW_PRIVATE  true lets webhooks reach loopback and private
                             addresses (false)
  TENANTRY_WEBHOOK_TIMEOUT   time a webhook receiver has to answer, e.g. 15s (15s)
  TENANTRY_BILLING_GRACE     how long a month's statement stays a draft, e.g. 24h (24h)
  TENANTRY_TRUSTED_PROXIES   comma-separated proxy addresses or CIDRs whose X-Forwarded-For
                             names the client (none)
  TENANTRY_UPSTREAM_OPENAI   the gateway's OpenAI base URL (https://api.openai.com/v1)
  TENANTRY_UPSTREAM_ANTHROPIC  the gateway's Anthropic base URL (https://api.anthropic.com/v1)
  TENANTRY_UPSTREAM_GOOGLE   the gateway's Google base URL
                             (https://generativelanguage.googleapis.com/v1beta/openai)
  TENANTRY_UPSTREAM_TIMEOUT  the longest a gateway call may take, e.g. 600s (600s)
  TENANTRY_GATEWAY_MAX_BODY  largest gateway request body, e.g. 32MiB (32MiB)
  TENANTRY_LOG               log level or filter, e.g. info or warn,tenantry=debug (info)
  TENANTRY_LOG_FORMAT        text or json (text)
Files in the data directory are written 0600, whatever the umask.";

/// Chooses plain or JSON lines; the first call wins.
pub fn set_format(format: LogFormat) {
    let _ = FORMAT.set(format);
}

fn format() -> LogFormat {
    FORMAT.get().copied().unwrap_or(LogFormat::Text)
}

/// A message that spans lines (SQLite's integrity reports do) folded into one.
pub fn one_line(s: &str) -> String {
    let mut out = String::with_capacity(s.len());
    for l in s.lines().map(str::trim).filter(|l| !l.is_empty()) {
        if !out.is_empty() {
            // A line that introduces the next ("...not provided:") runs on into it.
            out.push_str(if out.ends_with(':') { " " } else { "; " });
        }
        out.push_str(l);
    }
    out
}

#[derive(Clone, Copy)]
pub enum Level {
    Info,
    Warn,
    Error,
}

/// One line for the operator, with structured fields in JSON mode. A closed stderr must not
/// take the server down with it, so write errors are ignored.
pub fn emit(level: Level, message: &str, fields: &[(&str, Value)]) {
    let message = one_line(message);
    let line = match format() {
        LogFormat::Text => format!("tenantry: {message}"),
        LogFormat::Json => {
            let mut f = Map::new();
            f.insert("message".into(), json!(message));
            for (k, v) in fields {
                f.insert((*k).into(), v.clone());
            }
            let level = match level {
                Level::Info => "INFO",
                Level::Warn => "WARN",
                Level::Error => "ERROR",
            };
            json!({
                "timestamp": chrono::Utc::now().to_rfc3339_opts(chrono::SecondsFormat::Micros, true),
                "level": level,
                "fields": f,
                "target": "tenantry",
            })
            .to_string()
        }
    };
    let _ = writeln!(std::io::stderr(), "{line}");
}

pub fn say(message: &str) {
    emit(Level::Info, message, &[]);
}

pub fn fail(message: &str) {
    emit(Level::Error, message, &[]);
}

/// A panic is reported like any other failure: one line, not a trace over several.
pub fn one_line_panics() {
    std::panic::set_hook(Box::new(|info| {
        let what = info
            .payload()
            .downcast_ref::<&str>()
            .map(|s| s.to_string())
            .or_else(|| info.payload().downcast_ref::<String>().cloned())
            .unwrap_or_else(|| "panic".into());
        let at = info
            .location()
            .map(|l| format!(" at {}:{}", l.file(), l.line()))
            .unwrap_or_default();
        fail(&format!("internal error: {what}{at}"));
    }));
}

/// The start lines of `serve`: where it listens, warnings, and on first start the generated
/// admin token (its one display; in JSON mode once, as the `admin_token` field).
pub fn announce(app: &crate::startup::Application, data_dir: &std::path::Path) {
    let url = app.base_url();
    let data = data_dir.display().to_string();
    emit(
        Level::Info,
        &format!("serving {url} (data in {data})"),
        &[("url", json!(url)), ("data_dir", json!(data))],
    );
    say(&format!(
        "admin page: open {url}/ and sign in with the admin token"
    ));
    for notice in &app.notices {
        emit(Level::Warn, notice, &[]);
    }
    match (&app.generated_admin_token, format()) {
        (Some(token), LogFormat::Text) => {
            say(&format!(
                "admin token (shown once, stored only as a hash): {token}"
            ));
            say(&format!(
                "try: curl -H 'Authorization: Bearer {token}' {url}/api/features"
            ));
        }
        (Some(token), LogFormat::Json) => emit(
            Level::Warn,
            "admin token generated (shown once, stored only as a hash)",
            &[("admin_token", json!(token))],
        ),
        (None, _) => {
            say("admin token: the one in TENANTRY_ADMIN_TOKEN, or the one shown on first start")
        }
    }
}

/// Colour only for a person at a terminal; a file or a journal gets plain text.
pub fn init_logging(filter: &str, format: LogFormat) {
    let builder = tracing_subscriber::fmt()
        .with_env_filter(tracing_subscriber::EnvFilter::new(filter))
        .with_writer(std::io::stderr)
        .with_ansi(std::io::stderr().is_terminal());
    let _ = match format {
        LogFormat::Json => builder.json().try_init(),
        LogFormat::Text => builder.try_init(),
    };
}

/// Files SQLite creates (the WAL, the SHM, `VACUUM INTO` targets) take their mode from the
/// umask; with 0077 nothing tenantry writes is readable by other users, whatever the shell's
/// umask. Called first in `main`, before any thread exists.
pub fn restrict_umask() {
    #[cfg(unix)]
    // SAFETY: umask only swaps the process's file-creation mask; it cannot fail.
    unsafe {
        libc::umask(0o077);
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn multi_line_messages_become_one_line() {
        let m = "*** in database main ***\nPage 5: btreeInitPage() returns error code 11\n";
        assert_eq!(
            one_line(m),
            "*** in database main ***; Page 5: btreeInitPage() returns error code 11"
        );
        assert_eq!(
            one_line("missing:\n  <FILE>\n\nUsage: x"),
            "missing: <FILE>; Usage: x"
        );
    }
}
