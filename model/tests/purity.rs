//! The model crate stays pure: no async runtime, AWS or HTTP dependency, so its tests build
//! in seconds and nothing in it can do I/O behind the planner's back.

#[test]
fn model_depends_on_no_async_aws_or_http_crate() {
    let manifest = std::fs::read_to_string(concat!(env!("CARGO_MANIFEST_DIR"), "/Cargo.toml"))
        .expect("read model/Cargo.toml");
    let deps = manifest
        .split("[dependencies]")
        .nth(1)
        .and_then(|rest| rest.split("\n[").next())
        .expect("model/Cargo.toml has a [dependencies] table");
    let names: Vec<&str> = deps
        .lines()
        .filter_map(|l| l.split(['.', '=', ' ']).next())
        .map(str::trim)
        .filter(|n| !n.is_empty() && !n.starts_with('#'))
        .collect();
    assert!(names.contains(&"serde"), "parsed the table: {names:?}");
    let forbidden = [
        "tokio", "async", "futures", "aws", "reqwest", "hyper", "axum", "http", "tower", "backon",
    ];
    for name in &names {
        assert!(
            !forbidden.iter().any(|f| name.starts_with(f)),
            "model must stay pure, but depends on `{name}`"
        );
    }
}

/// Beyond its dependencies, the model's own source reads no clock, file, network, process or
/// environment: the planner gets `now` and every observation passed in, so a plan is a
/// function of its inputs alone. Comment lines are skipped; everything else is scanned.
#[test]
fn model_source_reads_no_clock_file_network_or_environment() {
    let forbidden = [
        "SystemTime::now",
        "Instant::now",
        "Utc::now",
        "Local::now",
        "Timestamp::now",
        "Zoned::now",
        "std::fs",
        "std::net",
        "std::env",
        "env::var",
        "std::process",
        "thread::sleep",
        "File::open",
        "File::create",
        "stdin()",
    ];
    let root = std::path::Path::new(concat!(env!("CARGO_MANIFEST_DIR"), "/src"));
    let mut files = Vec::new();
    let mut dirs = vec![root.to_path_buf()];
    while let Some(dir) = dirs.pop() {
        for entry in std::fs::read_dir(&dir).expect("read model/src") {
            let path = entry.expect("read a directory entry").path();
            if path.is_dir() {
                dirs.push(path);
            } else if path.extension().is_some_and(|e| e == "rs") {
                files.push(path);
            }
        }
    }
    assert!(files.len() > 10, "found the sources: {files:?}");
    let mut found = Vec::new();
    for file in &files {
        let text = std::fs::read_to_string(file).expect("read a source file");
        for (n, line) in text.lines().enumerate() {
            let code = line.trim_start();
            if code.starts_with("//") {
                continue;
            }
            for f in &forbidden {
                if code.contains(f) {
                    found.push(format!("{}:{}: {f}", file.display(), n + 1));
                }
            }
        }
    }
    assert!(found.is_empty(), "model/src must stay pure: {found:#?}");
}
