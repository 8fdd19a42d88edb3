//! The project's own documentation: `docs/API.md` names exactly the operations `/openapi.json`
//! serves, and every relative link in `README.md` and `docs/*.md` leads to a file (and heading)
//! inside the repository, so the docs work from a clone with nothing beside it.
use crate::helpers::spawn_app;
use std::collections::BTreeSet;
use std::path::{Path, PathBuf};

fn repo() -> PathBuf {
    PathBuf::from(env!("CARGO_MANIFEST_DIR"))
}

fn read(path: &Path) -> String {
    std::fs::read_to_string(path).unwrap_or_else(|e| panic!("{}: {e}", path.display()))
}

/// `README.md` and every `docs/*.md`.
fn markdown_files() -> Vec<PathBuf> {
    let mut files = vec![repo().join("README.md")];
    let dir = std::fs::read_dir(repo().join("docs")).expect("docs/ exists");
    for entry in dir {
        let path = entry.expect("docs/ is readable").path();
        if path.extension().is_some_and(|e| e == "md") {
            files.push(path);
        }
    }
    files.sort();
    files
}

/// The operations documented in `docs/API.md`: headings of the form "### `GET /api/usage/stats`".
fn documented_operations() -> BTreeSet<String> {
    read(&repo().join("docs/API.md"))
        .lines()
        .filter_map(|l| l.strip_prefix("### `")?.strip_suffix('`'))
        .map(str::to_string)
        .collect()
}

#[tokio::test]
async fn every_openapi_operation_has_a_heading_in_api_md_and_back() {
    let app = spawn_app().await;
    let doc = app.call("GET", "/openapi.json", None, None).await.body;
    let mut served = BTreeSet::new();
    for (path, ops) in doc["paths"].as_object().expect("paths") {
        // Each tenant-scoped operation is served twice; the reference documents it once, at
        // `/api/X`, and says that `/api/tenant/{slug}/X` serves it too.
        let path = match path.strip_prefix("/api/tenant/{slug}/") {
            Some(rest) => format!("/api/{rest}"),
            None => path.clone(),
        };
        for method in ops.as_object().expect("operations").keys() {
            served.insert(format!("{} {path}", method.to_uppercase()));
        }
    }
    assert!(served.len() > 30, "{served:?}");
    let documented = documented_operations();
    let missing: Vec<_> = served.difference(&documented).collect();
    let extra: Vec<_> = documented.difference(&served).collect();
    assert!(
        missing.is_empty() && extra.is_empty(),
        "docs/API.md lacks {missing:?}; documents what /openapi.json does not serve: {extra:?}"
    );
}

/// GitHub's heading anchors: lower case, spaces to `-`, everything but letters, digits, `-`
/// and `_` dropped.
fn anchor(heading: &str) -> String {
    heading
        .trim()
        .to_lowercase()
        .chars()
        .filter_map(|c| match c {
            ' ' => Some('-'),
            c if c.is_alphanumeric() || c == '-' || c == '_' => Some(c),
            _ => None,
        })
        .collect()
}

fn anchors(text: &str) -> BTreeSet<String> {
    let mut in_code = false;
    let mut out = BTreeSet::new();
    for line in text.lines() {
        if line.starts_with("```") {
            in_code = !in_code;
        } else if !in_code && line.starts_with('#') {
            out.insert(anchor(line.trim_start_matches('#')));
        }
    }
    out
}

/// Targets of inline links and images, `[text](target)`, outside code blocks.
fn link_targets(text: &str) -> Vec<String> {
    let mut in_code = false;
    let mut out = Vec::new();
    for line in text.lines() {
        if line.starts_with("```") {
            in_code = !in_code;
            continue;
        }
        if in_code {
            continue;
        }
        for (i, _) in line.match_indices("](") {
            let rest = &line[i + 2..];
            if let Some(end) = rest.find(')') {
                out.push(rest[..end].to_string());
            }
        }
    }
    out
}

#[test]
fn every_relative_link_in_readme_and_docs_points_to_a_file_in_the_repo() {
    let root = repo().canonicalize().expect("the repository");
    let mut checked = 0;
    for file in markdown_files() {
        let text = read(&file);
        assert!(
            !text.contains("../shared"),
            "{} refers to ../shared, which is outside the repository",
            file.display()
        );
        for target in link_targets(&text) {
            if target.contains("://") || target.starts_with("mailto:") {
                continue;
            }
            let (path, fragment) = match target.split_once('#') {
                Some((p, f)) => (p, Some(f)),
                None => (target.as_str(), None),
            };
            let dest = if path.is_empty() {
                file.clone()
            } else {
                let dir = file.parent().expect("a file has a directory");
                let joined = dir.join(path);
                let real = joined.canonicalize().unwrap_or_else(|_| {
                    panic!("{}: link `{target}` leads to no file", file.display())
                });
                assert!(
                    real.starts_with(&root),
                    "{}: link `{target}` leaves the repository",
                    file.display()
                );
                real
            };
            if let Some(fragment) = fragment {
                assert!(
                    anchors(&read(&dest)).contains(fragment),
                    "{}: link `{target}` names no heading of {}",
                    file.display(),
                    dest.display()
                );
            }
            checked += 1;
        }
    }
    assert!(checked >= 10, "only {checked} links found");
}
