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
