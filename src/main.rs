//! The `tenantry` command line: serve (the default), migrate and the operator's commands.
use clap::{Parser, Subcommand};
use std::path::PathBuf;
use std::process::ExitCode;
use tenantry::config::{Config, LogFormat};
use tenantry::console;
use tenantry::startup::Application;

/// glibc's malloc spent about a quarter of the request threads' time under batch ingest
/// (consolidating and unlinking free chunks of parsed JSON); mimalloc's per-thread free lists
/// avoid that work.
#[global_allocator]
static GLOBAL: mimalloc::MiMalloc = mimalloc::MiMalloc;

#[derive(Parser)]
#[command(
    name = "tenantry",
    version,
    about = "Multi-tenant control plane for AI applications: tenants, keys, settings and metered usage in one binary.",
    after_help = tenantry::console::ENVIRONMENT_HELP
)]
struct Cli {
    #[command(subcommand)]
    command: Option<Command>,
}

#[derive(Subcommand)]
enum Command {
    /// Serve the HTTP API (the default).
    Serve,
    /// Apply pending database migrations and exit.
    Migrate,
    /// Re-encrypt every stored provider key from ENCRYPTION_KEY_OLD to ENCRYPTION_KEY (server stopped).
    RotateEncryptionKey,
    /// Write a consistent snapshot of the database to FILE, also while the server runs.
    Backup {
        /// Where to write the snapshot (0600); an existing file is refused without --force.
        file: PathBuf,
        /// Overwrite FILE if it exists.
        #[arg(long)]
        force: bool,
    },
    /// Replace the database with a verified snapshot (server stopped); the old one is kept aside.
    Restore {
        /// A snapshot written by `tenantry backup` (or a copy of tenantry.db).
        file: PathBuf,
    },
    /// Check the database (integrity, foreign keys, tenant ownership, rollups, provider keys),
    /// read-only, also while the server runs; one line per check, exit 0 only when all pass.
    Verify,
    /// Copy this data dir's SQLite database into an empty PostgreSQL database, in one
    /// transaction, then compare counts and per-tenant sums (stop the server first: later
    /// writes are not copied); one line per table.
    Copy {
        /// The target, postgres://user:password@host:5432/database (never printed).
        #[arg(long, value_name = "POSTGRES_URL")]
        to: String,
    },
    /// Move one tenant between instances.
    Tenant {
        #[command(subcommand)]
        command: TenantCommand,
    },
    /// Manage the operator's model prices.
    Pricing {
        #[command(subcommand)]
        command: PricingCommand,
    },
}

#[derive(Subcommand)]
enum PricingCommand {
    /// Import a LiteLLM model_prices_and_context_window.json file as operator prices, all or
    /// nothing (server stopped; the server reads prices when it starts).
    Import {
        /// The price file (a JSON object: model name -> input_cost_per_token, ...).
        file: PathBuf,
    },
}

#[derive(Subcommand)]
enum TenantCommand {
    /// Print one tenant and everything it owns as JSON.
    Export {
        /// The tenant's id (UUID) or slug.
        id_or_slug: String,
        /// Write the export to this file (0600) instead of standard output.
        #[arg(long, short)]
        output: Option<PathBuf>,
        /// Overwrite the --output file if it exists.
        #[arg(long)]
        force: bool,
    },
    /// Import a tenant exported from this or another instance (server stopped; on PostgreSQL
    /// in one transaction beside running replicas).
    Import {
        /// A file written by `tenantry tenant export`.
        file: PathBuf,
        /// Replace a tenant with the same id.
        #[arg(long)]
        replace: bool,
        /// Import without provider keys (when the export's ENCRYPTION_KEY is not this one's).
        #[arg(long)]
        skip_provider_keys: bool,
    },
}

/// `tenantry pricing import`: on SQLite into a stopped server's file, on PostgreSQL while the
/// replicas serve.
fn import_prices(config: &Config, file: &std::path::Path) -> Result<(), String> {
    let parsed = tenantry::usage::price_import::import(config, file)?;
    let when = match config.database_url {
        None => "the server uses them from its next start",
        Some(_) => "running replicas use them within a second",
    };
    say(&format!("{}; {when}", parsed.summary()));
    Ok(())
}

fn main() -> ExitCode {
    console::restrict_umask();
    // Known before the rest of the configuration, so even its errors come in the chosen form.
    let format = std::env::var("TENANTRY_LOG_FORMAT").ok();
    console::set_format(LogFormat::parse(format.as_deref()).unwrap_or(LogFormat::Text));
    console::one_line_panics();
    let cli = match Cli::try_parse() {
        Ok(cli) => cli,
        Err(e) if !e.use_stderr() => e.exit(),
        Err(e) => {
            let text = e.render().to_string();
            console::fail(text.trim_start_matches("error: "));
            return ExitCode::from(2);
        }
    };
    let result = Config::from_env().and_then(|config| match cli.command {
        Some(Command::Migrate) => migrate(config),
        // Reads the SQLite file whatever TENANTRY_DATABASE_URL says: the target is --to.
        Some(Command::Copy { to }) => copy(&config, &to),
        Some(Command::Verify) if config.database_url.is_some() => verify(&config),
        Some(Command::Backup { .. } | Command::Restore { .. }) if config.database_url.is_some() => {
            Err("backup and restore are for the SQLite file; on PostgreSQL use pg_dump and pg_restore".into())
        }
        None | Some(Command::Serve) if config.database_url.is_some() => serve(config),
        Some(Command::RotateEncryptionKey) if config.database_url.is_some() => rotate_pg(&config),
        Some(Command::Tenant { command }) if config.database_url.is_some() => {
            tenant_pg(&config, command)
        }
        Some(Command::Pricing {
            command: PricingCommand::Import { file },
        }) => import_prices(&config, &file),
        _ if config.database_url.is_some() => Err(
            "TENANTRY_DATABASE_URL: this command does not run on PostgreSQL yet (issue 19 is \
             being built); `tenantry migrate` does"
                .into(),
        ),
        None | Some(Command::Serve) => serve(config),
        Some(Command::RotateEncryptionKey) => rotate(config),
        Some(Command::Backup { file, force }) => {
            let bytes = tenantry::db::backup::backup(&existing(&config)?, &file, force)?;
            say(&format!("wrote {} ({bytes} bytes)", file.display()));
            Ok(())
        }
        Some(Command::Restore { file }) => {
            match tenantry::db::backup::restore(&config, &file)? {
                Some(old) => say(&format!(
                    "restored {}; the replaced database is at {}",
                    file.display(),
                    old.display()
                )),
                None => say(&format!("restored {}", file.display())),
            }
            Ok(())
        }
        Some(Command::Verify) => verify(&config),
        Some(Command::Tenant {
            command:
                TenantCommand::Export {
                    id_or_slug,
                    output,
                    force,
                },
        }) => {
            let doc = tenantry::tenancy::transfer::export_tenant(&existing(&config)?, &id_or_slug)?;
            write_export(&doc, output, force)
        }
        Some(Command::Tenant {
            command:
                TenantCommand::Import {
                    file,
                    replace,
                    skip_provider_keys,
                },
        }) => {
            let (doc, opts) = read_import(&file, replace, skip_provider_keys)?;
            let id = tenantry::tenancy::transfer::import_tenant(&config, &doc, &opts)?;
            say(&format!("imported tenant {id}"));
            Ok(())
        }
    });
    match result {
        Ok(()) => ExitCode::SUCCESS,
        Err(reason) => {
            console::fail(&reason);
            ExitCode::FAILURE
        }
    }
}

/// One line for the operator (a JSON object with `TENANTRY_LOG_FORMAT=json`).
fn say(line: &str) {
    console::say(line);
}

fn serve(config: Config) -> Result<(), String> {
    console::init_logging(&config.log_filter, config.log_format);
    let data_dir = config.data_dir.clone();
    actix_web::rt::System::new().block_on(async move {
        let app = Application::build(config)?;
        console::announce(&app, &data_dir);
        app.run_until_stopped().await.map_err(|e| e.to_string())
    })
}

/// `tenant export` and `import` on PostgreSQL: the same documents and answers as on SQLite,
/// beside running replicas (the import tells their caches what it changed).
fn tenant_pg(config: &Config, command: TenantCommand) -> Result<(), String> {
    use tenantry::db::pg::block_on;
    use tenantry::tenancy::transfer_pg;
    let url = config
        .database_url
        .as_ref()
        .map(|u| u.expose())
        .unwrap_or_default();
    match command {
        TenantCommand::Export {
            id_or_slug,
            output,
            force,
        } => {
            let doc = block_on(transfer_pg::export_tenant(url, &id_or_slug))??;
            write_export(&doc, output, force)
        }
        TenantCommand::Import {
            file,
            replace,
            skip_provider_keys,
        } => {
            let (doc, opts) = read_import(&file, replace, skip_provider_keys)?;
            let id = block_on(transfer_pg::import_tenant(config, url, &doc, &opts))??;
            say(&format!("imported tenant {id}"));
            Ok(())
        }
    }
}

fn write_export(
    doc: &serde_json::Value,
    output: Option<PathBuf>,
    force: bool,
) -> Result<(), String> {
    match output {
        Some(path) => {
            tenantry::tenancy::transfer::write_private(&path, doc, force)?;
            say(&format!("wrote {}", path.display()));
            Ok(())
        }
        None => {
            use std::io::Write;
            let mut out = std::io::stdout().lock();
            serde_json::to_writer(&mut out, doc)
                .and_then(|_| writeln!(out).map_err(serde_json::Error::io))
                .map_err(|e| format!("cannot write the export: {e}"))
        }
    }
}

fn read_import(
    file: &std::path::Path,
    replace: bool,
    skip_provider_keys: bool,
) -> Result<
    (
        serde_json::Value,
        tenantry::tenancy::transfer::ImportOptions,
    ),
    String,
> {
    let text = std::fs::read_to_string(file)
        .map_err(|e| format!("cannot read {}: {e}", file.display()))?;
    let doc: serde_json::Value =
        serde_json::from_str(&text).map_err(|_| format!("{} is not JSON", file.display()))?;
    let opts = tenantry::tenancy::transfer::ImportOptions {
        replace,
        skip_provider_keys,
    };
    Ok((doc, opts))
}

fn existing(config: &Config) -> Result<PathBuf, String> {
    let path = config.db_path();
    if path.exists() {
        Ok(path)
    } else {
        Err(format!("no database at {}", path.display()))
    }
}

/// On PostgreSQL, with every replica stopped: the same one transaction as on SQLite.
fn rotate_pg(config: &Config) -> Result<(), String> {
    let url = config
        .database_url
        .as_ref()
        .ok_or("no TENANTRY_DATABASE_URL")?;
    let (n, hooks) =
        tenantry::db::pg::block_on(tenantry::crypto::rotate_pg::rotate(config, url.expose()))??;
    say(&format!(
        "re-encrypted {n} provider keys and {hooks} webhook secrets; start the replicas with the new ENCRYPTION_KEY"
    ));
    Ok(())
}

fn rotate(config: Config) -> Result<(), String> {
    let path = existing(&config)?;
    let _lock = tenantry::db::lock::CommandLock::acquire(&config.data_dir)?;
    let db = tenantry::db::Db::open(&path, config.sync_full)?;
    let mut c = db.conn().map_err(|e| e.to_string())?;
    let (n, hooks) = tenantry::crypto::instance::rotate(&config, &mut c)?;
    say(&format!(
        "re-encrypted {n} provider keys and {hooks} webhook secrets; start the server with the new ENCRYPTION_KEY"
    ));
    Ok(())
}

/// Prints one line per check on stdout; the exit status says whether all passed.
fn verify(config: &Config) -> Result<(), String> {
    use std::io::Write;
    let checks = match &config.database_url {
        Some(url) => tenantry::db::pg::block_on(tenantry::verify::pg::run(config, url.expose()))??,
        None => tenantry::verify::run(config)?,
    };
    let mut out = std::io::stdout().lock();
    for check in &checks {
        writeln!(out, "{}", check.line()).map_err(|e| format!("cannot write the report: {e}"))?;
    }
    match checks.iter().filter(|c| !c.passed()).count() {
        0 => Ok(()),
        n => Err(format!("verify: {n} of {} checks failed", checks.len())),
    }
}

/// Prints the copy's lines on stdout once it committed; a failure is one line on stderr.
fn copy(config: &Config, to: &str) -> Result<(), String> {
    use std::io::Write;
    let lines = tenantry::db::pg::block_on(tenantry::db::pg::copy::run(config, to))??;
    let mut out = std::io::stdout().lock();
    for line in &lines {
        writeln!(out, "{line}").map_err(|e| format!("cannot write the report: {e}"))?;
    }
    Ok(())
}

fn migrate(config: Config) -> Result<(), String> {
    if let Some(url) = &config.database_url {
        use tenantry::db::pg;
        pg::block_on(async {
            let db = pg::Pg::open(url.expose(), 1).await?;
            let version = pg::migrate::current(&*db.client().await?).await?;
            say(&format!(
                "the PostgreSQL database is at schema version {version}"
            ));
            Ok::<_, String>(())
        })??;
        return Ok(());
    }
    let path = config.db_path();
    tenantry::db::Db::open(&path, config.sync_full)?;
    say(&format!(
        "{} is at schema version {}",
        path.display(),
        tenantry::db::migrate::latest()
    ));
    Ok(())
}
