//! Every response body the simulator serves, checked against Gitea's own OpenAPI (Swagger 2.0)
//! description, `openapi-1.26.4.json`.
//!
//! The check resolves `#/definitions/…` and `#/responses/…` references and verifies types,
//! `required`, `items`, and that no property outside the schema is sent (Gitea's structs and
//! its swagger are generated from the same Go types, so an extra field means a typo here).
//! A `null` is accepted for a property that is not required: Go encodes nil slices and
//! pointers as `null` and the swagger has no `x-nullable`.
//!
//! Deliberate deviations from the swagger, where the real server differs from its description
//! (go-gitea/gitea v1.26.4 routers/api/v1/shared/runners.go:37 writes the token as the body):
//! - `POST …/runners/registration-token`: the swagger documents the token as a response header;
//!   the real body is `{"token": "…"}`. Checked against an inline schema, and the test asserts
//!   the swagger still has no body schema there, so a fixed swagger is noticed.
//! - `GET …/contents/{filepath}` on a directory answers an array (`ContentsListResponse`),
//!   while the swagger names only `ContentsResponse` for that path.
//! - Error bodies have no schema in the swagger (`error`, `notFound` are header-only); they are
//!   checked against `APIError`, plus the `errors` array Gitea adds to 404 bodies.
//!
//! The spec is read from `$TINQS_SHARED_DIR/gitea/openapi-1.26.4.json`, by default
//! `<workspace>/../shared/gitea/openapi-1.26.4.json`.

use std::path::PathBuf;
use std::time::Duration;

use gitea_sim::{CommitSpec, FileChange, JobSpec, PushSpec, RunnerSpec, Scope, SimConfig};
use serde_json::{json, Value};

use crate::common::*;

struct Spec {
    doc: Value,
}

fn spec_path() -> PathBuf {
    let dir = std::env::var_os("TINQS_SHARED_DIR").map_or_else(
        || PathBuf::from(concat!(env!("CARGO_MANIFEST_DIR"), "/../../shared")),
        PathBuf::from,
    );
    dir.join("gitea").join("openapi-1.26.4.json")
}

impl Spec {
    fn load() -> Spec {
        let path = spec_path();
        let text = std::fs::read_to_string(&path).unwrap_or_else(|e| {
            panic!(
                "the Gitea OpenAPI spec is missing at {} ({e}); set TINQS_SHARED_DIR to the directory holding gitea/openapi-1.26.4.json",
                path.display()
            )
        });
        Spec {
            doc: serde_json::from_str(&text).expect("the OpenAPI spec is valid JSON"),
        }
    }

    fn definition(&self, name: &str) -> Value {
        self.doc["definitions"]
            .get(name)
            .cloned()
            .unwrap_or_else(|| panic!("no definition {name} in the spec"))
    }

    /// The body schema of `method path` answering `status`, `None` when the spec gives none.
    fn response_schema(&self, path: &str, method: &str, status: &str) -> Option<Value> {
        let op = self.doc["paths"]
            .get(path)
            .and_then(|p| p.get(method))
            .unwrap_or_else(|| panic!("the spec has no operation {method} {path}"));
        let mut resp = op["responses"]
            .get(status)
            .cloned()
            .unwrap_or_else(|| panic!("{method} {path} has no {status}"));
        if let Some(r) = resp.get("$ref").and_then(Value::as_str) {
            let name = r
                .strip_prefix("#/responses/")
                .expect("response refs point into #/responses");
            resp = self.doc["responses"][name].clone();
        }
        resp.get("schema").cloned()
    }

    fn check(&self, value: &Value, schema: &Value, what: &str) {
        let mut errs = Vec::new();
        self.validate(value, schema, "$", &mut errs);
        assert!(
            errs.is_empty(),
            "{what} does not match the spec:\n  {}\nbody: {value}",
            errs.join("\n  ")
        );
    }

    fn check_response(&self, value: &Value, path: &str, method: &str, status: &str) {
        let schema = self
            .response_schema(path, method, status)
            .unwrap_or_else(|| panic!("{method} {path} {status} has no schema in the spec"));
        self.check(value, &schema, &format!("{method} {path} {status}"));
    }

    fn validate(&self, v: &Value, schema: &Value, at: &str, errs: &mut Vec<String>) {
        if let Some(r) = schema.get("$ref").and_then(Value::as_str) {
            let name = r
                .strip_prefix("#/definitions/")
                .expect("schema refs point into #/definitions");
            return self.validate(v, &self.definition(name), at, errs);
        }
        let Some(ty) = schema.get("type").and_then(Value::as_str) else {
            return;
        };
        match ty {
            "object" => {
                let Some(obj) = v.as_object() else {
                    errs.push(format!("{at}: expected an object, got {v}"));
                    return;
                };
                let required: Vec<&str> = schema
                    .get("required")
                    .and_then(Value::as_array)
                    .map(|a| a.iter().filter_map(Value::as_str).collect())
                    .unwrap_or_default();
                for r in &required {
                    if !obj.contains_key(*r) {
                        errs.push(format!("{at}: missing required {r}"));
                    }
                }
                let props = schema.get("properties").and_then(Value::as_object);
                let extra = schema.get("additionalProperties");
                if props.is_none() && extra.is_none() {
                    return;
                }
                for (k, val) in obj {
                    let here = format!("{at}.{k}");
                    match (props.and_then(|p| p.get(k)), extra) {
                        (Some(_), _) if val.is_null() && !required.contains(&k.as_str()) => {}
                        (Some(s), _) => self.validate(val, s, &here, errs),
                        (None, Some(s)) if s.is_object() => self.validate(val, s, &here, errs),
                        (None, Some(Value::Bool(true))) => {}
                        _ => errs.push(format!("{here}: not a property of the schema")),
                    }
                }
            }
            "array" => {
                let Some(items) = v.as_array() else {
                    errs.push(format!("{at}: expected an array, got {v}"));
                    return;
                };
                if let Some(s) = schema.get("items") {
                    for (i, item) in items.iter().enumerate() {
                        self.validate(item, s, &format!("{at}[{i}]"), errs);
                    }
                }
            }
            "string" => match v.as_str() {
                None => errs.push(format!("{at}: expected a string, got {v}")),
                Some(s)
                    if schema.get("format").and_then(Value::as_str) == Some("date-time")
                        && !is_date_time(s) =>
                {
                    errs.push(format!("{at}: {s:?} is not an RFC 3339 date-time"));
                }
                Some(_) => {}
            },
            "integer" if !(v.is_i64() || v.is_u64()) => {
                errs.push(format!("{at}: expected an integer, got {v}"))
            }
            "number" if !v.is_number() => errs.push(format!("{at}: expected a number, got {v}")),
            "boolean" if !v.is_boolean() => errs.push(format!("{at}: expected a boolean, got {v}")),
            _ => {}
        }
    }
}

/// `YYYY-MM-DDTHH:MM:SS` plus optional fraction and `Z` or `±HH:MM`.
fn is_date_time(s: &str) -> bool {
    let b = s.as_bytes();
    let digits =
        |r: std::ops::Range<usize>| r.clone().all(|i| b.get(i).is_some_and(u8::is_ascii_digit));
    if b.len() < 20
        || !digits(0..4)
        || b[4] != b'-'
        || !digits(5..7)
        || b[7] != b'-'
        || !digits(8..10)
    {
        return false;
    }
    if b[10] != b'T'
        || !digits(11..13)
        || b[13] != b':'
        || !digits(14..16)
        || b[16] != b':'
        || !digits(17..19)
    {
        return false;
    }
    let mut rest = &s[19..];
    if let Some(frac) = rest.strip_prefix('.') {
        let n = frac.bytes().take_while(u8::is_ascii_digit).count();
        if n == 0 {
            return false;
        }
        rest = &frac[n..];
    }
    rest == "Z"
        || (rest.len() == 6
            && (rest.starts_with('+') || rest.starts_with('-'))
            && &rest[3..4] == ":")
}

/// The inline schemas for the documented deviations.
fn token_schema() -> Value {
    json!({"type": "object", "required": ["token"], "properties": {"token": {"type": "string"}}})
}

fn not_found_schema() -> Value {
    json!({"type": "object", "required": ["message"], "properties": {
        "errors": {"type": "array", "items": {"type": "string"}},
        "message": {"type": "string"}, "url": {"type": "string"}}})
}

#[test]
fn the_validator_itself_rejects_wrong_types_extra_fields_and_bad_dates() {
    let spec = Spec::load();
    let runner = json!({"$ref": "#/definitions/ActionRunner"});
    let mut errs = Vec::new();
    spec.validate(
        &json!({"id": "1", "nmae": "x", "labels": [{"id": 0, "name": 1}]}),
        &runner,
        "$",
        &mut errs,
    );
    assert_eq!(errs.len(), 3, "{errs:?}");
    let job = json!({"$ref": "#/definitions/ActionWorkflowJob"});
    errs.clear();
    spec.validate(
        &json!({"created_at": "yesterday", "steps": null}),
        &job,
        "$",
        &mut errs,
    );
    assert_eq!(
        errs,
        vec!["$.created_at: \"yesterday\" is not an RFC 3339 date-time".to_owned()]
    );
    assert!(is_date_time("1970-01-01T00:00:00Z") && is_date_time("2026-01-02T03:04:05.5+02:00"));
}

#[tokio::test]
async fn every_response_body_matches_the_gitea_1_26_4_spec() {
    let spec = Spec::load();
    let rx = receiver(200, Duration::ZERO).await;
    let sim = start(SimConfig::default().webhook(&rx.url, "k")).await;

    // A repository with history, jobs in every state, runners in every scope.
    let first = sim
        .push(PushSpec::new(
            "acme/app",
            "main",
            vec![CommitSpec::new(
                "init",
                vec![FileChange::put(".gitea/workflows/ci.yml", "on: push\n")],
            )],
        ))
        .expect("push");
    let second = sim
        .push(PushSpec::new(
            "acme/app",
            "main",
            vec![CommitSpec::new(
                "more",
                vec![FileChange::put("src/a.rs", "x")],
            )],
        ))
        .expect("push");
    let queued = sim
        .enqueue_job(JobSpec::new("acme/app", "queued", &["linux"]))
        .expect("enqueue");
    sim.enqueue_job(JobSpec::new("acme/app", "blocked", &["linux"]).blocked())
        .expect("enqueue");
    let running = sim
        .enqueue_job(JobSpec::new("acme/app", "running", &["gpu"]))
        .expect("enqueue");
    let done = sim
        .enqueue_job(JobSpec::new("acme/app", "done", &["arm"]))
        .expect("enqueue");
    let gpu = register(&sim, "gpu", &["gpu"], false).await;
    fetch(&sim, &gpu).await.expect("task");
    let arm = register(&sim, "arm", &["arm"], true).await;
    let t = fetch(&sim, &arm).await.expect("task");
    finish(&sim, &arm, t, "RESULT_SUCCESS").await;
    let org = sim
        .create_runner(RunnerSpec::new("org", &["x"]).scope(Scope::Org("acme".into())))
        .expect("runner");
    let repo = sim
        .create_runner(RunnerSpec::new("repo", &["x"]).scope(Scope::Repo("acme/app".into())))
        .expect("runner");

    let (_, v) = api(&sim, "GET", "/version", None).await;
    spec.check_response(&v, "/version", "get", "200");

    for (prefix, tpl, runner_id) in [
        ("/admin", "/admin", gpu.id),
        ("/orgs/acme", "/orgs/{org}", org.id),
        ("/repos/acme/app", "/repos/{owner}/{repo}", repo.id),
    ] {
        let (s, v) = api(&sim, "GET", &format!("{prefix}/actions/runners"), None).await;
        assert_eq!(s, 200);
        assert!(v["total_count"].as_i64().unwrap_or(0) >= 1);
        spec.check_response(&v, &format!("{tpl}/actions/runners"), "get", "200");

        let one = format!("{prefix}/actions/runners/{runner_id}");
        let one_tpl = format!("{tpl}/actions/runners/{{runner_id}}");
        let (_, v) = api(&sim, "GET", &one, None).await;
        spec.check_response(&v, &one_tpl, "get", "200");
        let (s, v) = api(&sim, "PATCH", &one, Some(json!({"disabled": false}))).await;
        assert_eq!(s, 200);
        spec.check_response(&v, &one_tpl, "patch", "200");

        let tok = format!("{tpl}/actions/runners/registration-token");
        assert!(
            spec.response_schema(&tok, "post", "200").is_none(),
            "the swagger now describes the token body"
        );
        let (_, v) = api(
            &sim,
            "POST",
            &format!("{prefix}/actions/runners/registration-token"),
            None,
        )
        .await;
        spec.check(&v, &token_schema(), "registration token");

        let (s, v) = api(&sim, "GET", &format!("{prefix}/actions/jobs"), None).await;
        assert_eq!(s, 200);
        assert_eq!(v["total_count"], 4);
        spec.check_response(&v, &format!("{tpl}/actions/jobs"), "get", "200");
    }

    for id in [queued.id, running.id, done.id] {
        let (_, v) = api(
            &sim,
            "GET",
            &format!("/repos/acme/app/actions/jobs/{id}"),
            None,
        )
        .await;
        spec.check_response(
            &v,
            "/repos/{owner}/{repo}/actions/jobs/{job_id}",
            "get",
            "200",
        );
    }

    let (_, v) = api(&sim, "GET", "/repos/acme/app", None).await;
    spec.check_response(&v, "/repos/{owner}/{repo}", "get", "200");

    let (_, v) = api(
        &sim,
        "GET",
        &format!("/repos/acme/app/contents?ref={}", second.after),
        None,
    )
    .await;
    spec.check_response(&v, "/repos/{owner}/{repo}/contents", "get", "200");
    let (_, v) = api(
        &sim,
        "GET",
        "/repos/acme/app/contents/.gitea/workflows/ci.yml",
        None,
    )
    .await;
    spec.check_response(
        &v,
        "/repos/{owner}/{repo}/contents/{filepath}",
        "get",
        "200",
    );
    let (_, v) = api(
        &sim,
        "GET",
        "/repos/acme/app/contents/.gitea/workflows",
        None,
    )
    .await;
    assert!(v.is_array());
    spec.check_response(&v, "/repos/{owner}/{repo}/contents", "get", "200");

    let (_, v) = api(
        &sim,
        "GET",
        &format!("/repos/acme/app/compare/{}...{}", first.after, second.after),
        None,
    )
    .await;
    assert_eq!(v["total_commits"], 1);
    spec.check_response(&v, "/repos/{owner}/{repo}/compare/{basehead}", "get", "200");
    let (_, v) = api(
        &sim,
        "GET",
        &format!("/repos/acme/app/git/commits/{}", second.after),
        None,
    )
    .await;
    spec.check_response(&v, "/repos/{owner}/{repo}/git/commits/{sha}", "get", "200");

    // Error bodies.
    let api_error = json!({"$ref": "#/definitions/APIError"});
    let (s, v) = api(&sim, "GET", "/admin/actions/runners/999999", None).await;
    assert_eq!(s, 404);
    spec.check(&v, &not_found_schema(), "404");
    let (s, v) = api(&sim, "GET", "/admin/actions/jobs?status=nope", None).await;
    assert_eq!(s, 400);
    spec.check(&v, &api_error, "400");
    let (s, v) = api(
        &sim,
        "PATCH",
        &format!("/admin/actions/runners/{}", org.id),
        Some(json!({})),
    )
    .await;
    assert_eq!(s, 422);
    spec.check(&v, &api_error, "422");
    let resp = client()
        .get(format!("{}/api/v1/admin/actions/runners", sim.base_url()))
        .send()
        .await
        .expect("request");
    assert_eq!(resp.status().as_u16(), 401);
    spec.check(&resp.json().await.expect("json"), &api_error, "401");

    // Webhook payloads: their parts are spec types.
    sim.flush_webhooks().await;
    let got = rx.received();
    assert!(got.len() >= 9, "pushes and job transitions were announced");
    for g in &got {
        let body = g.json();
        spec.check(
            &body["repository"],
            &json!({"$ref": "#/definitions/Repository"}),
            "payload repository",
        );
        spec.check(
            &body["sender"],
            &json!({"$ref": "#/definitions/User"}),
            "payload sender",
        );
        if g.header("x-gitea-event") == "push" {
            for key in [
                "ref",
                "before",
                "after",
                "compare_url",
                "commits",
                "total_commits",
                "head_commit",
                "pusher",
            ] {
                assert!(body.get(key).is_some(), "push payload lacks {key}");
            }
            spec.check(
                &body["head_commit"],
                &json!({"$ref": "#/definitions/PayloadCommit"}),
                "head_commit",
            );
            spec.check(
                &body["commits"],
                &json!({"type": "array", "items": {"$ref": "#/definitions/PayloadCommit"}}),
                "commits",
            );
            spec.check(
                &body["pusher"],
                &json!({"$ref": "#/definitions/User"}),
                "pusher",
            );
        } else {
            assert_eq!(g.header("x-gitea-event"), "workflow_job");
            assert!(body["action"].is_string());
            spec.check(
                &body["workflow_job"],
                &json!({"$ref": "#/definitions/ActionWorkflowJob"}),
                "workflow_job",
            );
        }
    }
    sim.shutdown().await;
}
