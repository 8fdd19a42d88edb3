//! `include_dir!` embeds `migrations/` and `static/`, but cargo does not know to rebuild when a
//! file there is added or changed; these lines tell it (a directory is scanned recursively).
fn main() {
    println!("cargo:rerun-if-changed=migrations");
    println!("cargo:rerun-if-changed=static");
}
