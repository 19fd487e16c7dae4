//! The REST API subset under `/api/v1`, with Gitea's paths, shapes and status codes.

use std::collections::HashMap;
use std::sync::Arc;

use axum::body::Bytes;
use axum::extract::{OriginalUri, Path, RawQuery, Request, State as AxState};
use axum::http::{header, HeaderMap, HeaderValue, StatusCode};
use axum::middleware::Next;
use axum::response::{IntoResponse, Response};
use axum::routing::{get, post};
use axum::{Json, Router};
use serde_json::{json, Value};

use crate::config::Scope;
use crate::git::Entry;
use crate::shared::Shared;
use crate::state::StatusFilter;

type Sh = AxState<Arc<Shared>>;
type Params = Path<HashMap<String, String>>;

/// An API failure in Gitea's error shape.
#[derive(Debug)]
pub(crate) enum ApiErr {
    NotFound(String),
    BadRequest(String),
    Unauthorized(String),
    Unprocessable(String),
    MethodNotAllowed,
}

pub(crate) struct ApiError {
    err: ApiErr,
    base: String,
}

impl IntoResponse for ApiError {
    fn into_response(self) -> Response {
        let url = format!("{}/api/swagger", self.base);
        let (status, body) = match self.err {
            ApiErr::NotFound(detail) => (
                StatusCode::NOT_FOUND,
                json!({"errors": [detail], "message": "The target couldn't be found.", "url": url}),
            ),
            ApiErr::BadRequest(m) => (StatusCode::BAD_REQUEST, json!({"message": m, "url": url})),
            ApiErr::Unauthorized(m) => {
                (StatusCode::UNAUTHORIZED, json!({"message": m, "url": url}))
            }
            ApiErr::Unprocessable(m) => (
                StatusCode::UNPROCESSABLE_ENTITY,
                json!({"message": m, "url": url}),
            ),
            ApiErr::MethodNotAllowed => (
                StatusCode::METHOD_NOT_ALLOWED,
                json!({"message": "method not allowed", "url": url}),
            ),
        };
        (status, Json(body)).into_response()
    }
}

type ApiResult = Result<Response, ApiError>;

fn fail(shared: &Shared, err: ApiErr) -> ApiError {
    ApiError {
        err,
        base: shared.base_url(),
    }
}

pub(crate) fn router(shared: Arc<Shared>) -> Router<Arc<Shared>> {
    let runners = |r: Router<Arc<Shared>>, prefix: &str| {
        r.route(&format!("{prefix}/actions/runners"), get(list_runners))
            .route(
                &format!("{prefix}/actions/runners/registration-token"),
                post(registration_token_post).get(registration_token_get),
            )
            .route(
                &format!("{prefix}/actions/runners/{{runner_id}}"),
                get(get_runner).delete(delete_runner).patch(patch_runner),
            )
            .route(&format!("{prefix}/actions/jobs"), get(list_jobs))
    };
    let mut authed = Router::new();
    authed = runners(authed, "/api/v1/admin");
    authed = runners(authed, "/api/v1/orgs/{org}");
    authed = runners(authed, "/api/v1/repos/{owner}/{repo}");
    let authed = authed
        .route(
            "/api/v1/admin/runners/registration-token",
            get(registration_token_get),
        )
        .route(
            "/api/v1/repos/{owner}/{repo}/actions/jobs/{job_id}",
            get(get_job),
        )
        .route("/api/v1/repos/{owner}/{repo}", get(get_repo))
        .route("/api/v1/repos/{owner}/{repo}/contents", get(contents_root))
        .route(
            "/api/v1/repos/{owner}/{repo}/contents/{*filepath}",
            get(contents),
        )
        .route("/api/v1/repos/{owner}/{repo}/raw/{*filepath}", get(raw))
        .route(
            "/api/v1/repos/{owner}/{repo}/compare/{basehead}",
            get(compare),
        )
        .route(
            "/api/v1/repos/{owner}/{repo}/git/commits/{sha}",
            get(git_commit),
        )
        .route_layer(axum::middleware::from_fn_with_state(shared, auth));
    Router::new()
        .route("/api/v1/version", get(version))
        .merge(authed)
        .route("/api/v1/{*rest}", axum::routing::any(not_found))
}

async fn not_found(AxState(shared): Sh) -> ApiError {
    fail(&shared, ApiErr::NotFound("no such API route".into()))
}

/// `Authorization: token <t>` or `Bearer <t>`.
async fn auth(AxState(shared): Sh, req: Request, next: Next) -> Response {
    let given = req
        .headers()
        .get(header::AUTHORIZATION)
        .and_then(|v| v.to_str().ok())
        .and_then(|v| v.split_once(' '))
        .filter(|(scheme, _)| {
            scheme.eq_ignore_ascii_case("token") || scheme.eq_ignore_ascii_case("bearer")
        })
        .map(|(_, t)| t.trim().to_owned());
    match given {
        None => fail(&shared, ApiErr::Unauthorized("token is required".into())).into_response(),
        Some(t) if t != shared.admin_token => fail(
            &shared,
            ApiErr::Unauthorized("invalid username, password or token".into()),
        )
        .into_response(),
        Some(_) => next.run(req).await,
    }
}

async fn version(AxState(shared): Sh) -> Response {
    let v = shared.with(|st, _| st.version_string.clone());
    Json(json!({"version": v})).into_response()
}

/// Decodes a query string into pairs (repeated keys kept).
pub(crate) fn query_pairs(q: Option<&str>) -> Vec<(String, String)> {
    q.unwrap_or("")
        .split('&')
        .filter(|p| !p.is_empty())
        .map(|p| {
            let (k, v) = p.split_once('=').unwrap_or((p, ""));
            (percent_decode(k), percent_decode(v))
        })
        .collect()
}

fn percent_decode(s: &str) -> String {
    let bytes = s.as_bytes();
    let mut out = Vec::with_capacity(bytes.len());
    let mut i = 0;
    while i < bytes.len() {
        match bytes[i] {
            b'+' => out.push(b' '),
            b'%' if i + 2 < bytes.len() => {
                match std::str::from_utf8(&bytes[i + 1..i + 3])
                    .ok()
                    .and_then(|h| u8::from_str_radix(h, 16).ok())
                    .ok_or(())
                {
                    Ok(b) => {
                        out.push(b);
                        i += 2;
                    }
                    Err(_) => out.push(b'%'),
                }
            }
            b => out.push(b),
        }
        i += 1;
    }
    String::from_utf8_lossy(&out).into_owned()
}

fn first<'a>(q: &'a [(String, String)], key: &str) -> Option<&'a str> {
    q.iter().find(|(k, _)| k == key).map(|(_, v)| v.as_str())
}

/// Gitea's `GetListOptions`: page is 1-based, limit defaults to 30 and is capped at 50
/// (go-gitea/gitea v1.26.4 routers/api/v1/utils/page.go:13-18, services/convert/utils.go:15-22,
/// modules/setting/api.go:25-26).
fn paging(q: &[(String, String)]) -> (usize, usize) {
    let page = first(q, "page")
        .and_then(|p| p.parse::<i64>().ok())
        .filter(|p| *p > 0)
        .unwrap_or(1);
    let limit = first(q, "limit")
        .and_then(|p| p.parse::<i64>().ok())
        .filter(|l| *l > 0)
        .unwrap_or(30)
        .min(50);
    (
        usize::try_from(page).unwrap_or(1),
        usize::try_from(limit).unwrap_or(30),
    )
}

fn page_of<T: Clone>(items: &[T], page: usize, limit: usize) -> Vec<T> {
    items
        .iter()
        .skip((page - 1).saturating_mul(limit))
        .take(limit)
        .cloned()
        .collect()
}

/// The scope a route names, checked to exist.
fn scope_of(shared: &Shared, params: &HashMap<String, String>) -> Result<Scope, ApiError> {
    let scope = match (params.get("owner"), params.get("repo"), params.get("org")) {
        (Some(o), Some(r), _) => Scope::Repo(format!("{o}/{r}")),
        (_, _, Some(org)) => Scope::Org(org.clone()),
        _ => Scope::Instance,
    };
    if shared.with(|st, _| st.scope_exists(&scope)) {
        Ok(scope)
    } else {
        let what = match &scope {
            Scope::Repo(r) => format!("repository {r} does not exist"),
            Scope::Org(o) => format!("organization {o} does not exist"),
            Scope::Instance => String::new(),
        };
        Err(fail(shared, ApiErr::NotFound(what)))
    }
}

fn need(shared: &Shared, major: u32, minor: u32) -> Result<(), ApiError> {
    if shared.with(|st, _| st.version.at_least(major, minor)) {
        Ok(())
    } else {
        Err(fail(
            shared,
            ApiErr::NotFound(format!("this route needs Gitea {major}.{minor}")),
        ))
    }
}

fn runner_id(shared: &Shared, params: &HashMap<String, String>) -> Result<i64, ApiError> {
    params
        .get("runner_id")
        .and_then(|s| s.parse::<i64>().ok())
        .ok_or_else(|| fail(shared, ApiErr::NotFound("runner does not exist".into())))
}

async fn list_runners(
    AxState(shared): Sh,
    Path(params): Params,
    RawQuery(q): RawQuery,
) -> ApiResult {
    need(&shared, 1, 24)?;
    let scope = scope_of(&shared, &params)?;
    let q = query_pairs(q.as_deref());
    let (page, limit) = paging(&q);
    let body = shared.with(|st, now| {
        let disabled = if st.version.at_least(1, 26) {
            first(&q, "disabled").and_then(|d| d.parse::<bool>().ok())
        } else {
            None
        };
        // Each page request orders the rows afresh, as each page is its own query.
        let all: Vec<Value> = st
            .list_runners(&scope, disabled, now)
            .iter()
            .map(|r| st.runner_json(r, now))
            .collect();
        json!({"runners": page_of(&all, page, limit), "total_count": all.len()})
    });
    Ok(Json(body).into_response())
}

async fn get_runner(AxState(shared): Sh, Path(params): Params) -> ApiResult {
    need(&shared, 1, 24)?;
    let scope = scope_of(&shared, &params)?;
    let id = runner_id(&shared, &params)?;
    shared
        .with(|st, now| {
            st.runner_in_scope(&scope, id)
                .map(|r| st.runner_json(r, now))
        })
        .map(|b| Json(b).into_response())
        .ok_or_else(|| {
            fail(
                &shared,
                ApiErr::NotFound(format!("runner {id} does not exist")),
            )
        })
}

async fn delete_runner(AxState(shared): Sh, Path(params): Params) -> ApiResult {
    need(&shared, 1, 24)?;
    let scope = scope_of(&shared, &params)?;
    let id = runner_id(&shared, &params)?;
    if shared.with(|st, _| st.delete_runner(&scope, id)) {
        Ok(StatusCode::NO_CONTENT.into_response())
    } else {
        Err(fail(
            &shared,
            ApiErr::NotFound(format!("runner {id} does not exist")),
        ))
    }
}

/// `PATCH …/runners/{id}` with `{"disabled": bool}`, from 1.26 (commit b3b2d111da, #36776;
/// go-gitea/gitea v1.26.4 routers/api/v1/api.go:975).
async fn patch_runner(AxState(shared): Sh, Path(params): Params, body: Bytes) -> ApiResult {
    if !shared.with(|st, _| st.version.at_least(1, 26)) {
        return Err(fail(&shared, ApiErr::MethodNotAllowed));
    }
    let scope = scope_of(&shared, &params)?;
    let id = runner_id(&shared, &params)?;
    let parsed: Value = serde_json::from_slice(&body).map_err(|e| {
        fail(
            &shared,
            ApiErr::Unprocessable(format!("invalid JSON body: {e}")),
        )
    })?;
    let disabled = parsed
        .get("disabled")
        .and_then(Value::as_bool)
        .ok_or_else(|| {
            fail(
                &shared,
                ApiErr::Unprocessable("disabled: Required (a boolean)".into()),
            )
        })?;
    shared
        .with(|st, now| {
            st.set_disabled(&scope, id, disabled)
                .map(|r| st.runner_json(&r, now))
        })
        .map(|b| Json(b).into_response())
        .ok_or_else(|| {
            fail(
                &shared,
                ApiErr::NotFound(format!("runner {id} does not exist")),
            )
        })
}

/// `POST …/registration-token` answers the token in the body (go-gitea/gitea v1.26.4
/// routers/api/v1/shared/runners.go:37), from 1.24 (commit 21b43fce08, #33873).
async fn registration_token_post(AxState(shared): Sh, Path(params): Params) -> ApiResult {
    need(&shared, 1, 24)?;
    let scope = scope_of(&shared, &params)?;
    let token = shared.with(|st, _| st.registration_token(&scope));
    Ok(Json(json!({"token": token})).into_response())
}

/// The GET form existed from 1.22 (go-gitea/gitea commit baf0d402d9, #27144) to 1.25 and was
/// removed in 1.26 (commit 716a800f50, #36801).
async fn registration_token_get(AxState(shared): Sh, Path(params): Params) -> ApiResult {
    let (old_enough, too_new) =
        shared.with(|st, _| (st.version.at_least(1, 22), st.version.at_least(1, 26)));
    if too_new {
        return Err(fail(&shared, ApiErr::MethodNotAllowed));
    }
    if !old_enough {
        return Err(fail(
            &shared,
            ApiErr::NotFound("this route needs Gitea 1.22".into()),
        ));
    }
    let scope = scope_of(&shared, &params)?;
    let token = shared.with(|st, _| st.registration_token(&scope));
    Ok(Json(json!({"token": token})).into_response())
}

async fn list_jobs(
    AxState(shared): Sh,
    Path(params): Params,
    RawQuery(q): RawQuery,
    OriginalUri(uri): OriginalUri,
) -> ApiResult {
    // The jobs lists exist from 1.25 (go-gitea/gitea commit cda90eca31, #33964); `status`
    // is mapped by `convertToInternal` (v1.26.4 routers/api/v1/shared/action.go:87). For the
    // order see `State::list_jobs`.
    need(&shared, 1, 25)?;
    let scope = scope_of(&shared, &params)?;
    let q = query_pairs(q.as_deref());
    let (page, limit) = paging(&q);
    let mut filters = Vec::new();
    for (_, v) in q.iter().filter(|(k, _)| k == "status") {
        let f = StatusFilter::parse(v)
            .ok_or_else(|| fail(&shared, ApiErr::BadRequest(format!("invalid status {v}"))))?;
        filters.push(f);
    }
    let descending = job_order(&shared, &q)?;
    let (body, total, headers_too, base) = shared.with(|st, _| {
        let mut rows = st.list_jobs(&scope, &filters);
        if descending {
            rows.reverse();
        }
        let all: Vec<Value> = rows.iter().map(|j| st.job_json(j)).collect();
        let total = all.len();
        (
            json!({"jobs": page_of(&all, page, limit), "total_count": total}),
            total,
            st.version.at_least(1, 26),
            st.base_url.clone(),
        )
    });
    let mut resp = Json(body).into_response();
    // `X-Total-Count` and `Link` from 1.26 (commit 403a73dca0, #36521; v1.26.4
    // routers/api/v1/shared/action.go:82-83).
    if headers_too {
        let h = resp.headers_mut();
        if let Ok(v) = HeaderValue::from_str(&total.to_string()) {
            h.insert("X-Total-Count", v);
        }
        if let Ok(v) =
            HeaderValue::from_str(&link_header(&base, uri.path(), &q, page, limit, total))
        {
            h.insert(header::LINK, v);
        }
    }
    Ok(resp)
}

/// From 1.27 the job lists take `sort` (only `id`) and `order` (`asc`, the default, or
/// `desc`); anything else is 422 (go-gitea/gitea commit a564f0587a, #37672; v1.27.0-rc0
/// routers/api/v1/utils/sort.go:18-38, models/actions/run_job_list.go:104-107). Before 1.27
/// both are ignored. Returns whether the order is descending.
fn job_order(shared: &Shared, q: &[(String, String)]) -> Result<bool, ApiError> {
    let sort = first(q, "sort").unwrap_or("");
    if sort.is_empty() || !shared.with(|st, _| st.version.at_least(1, 27)) {
        return Ok(false);
    }
    let order = first(q, "order").filter(|o| !o.is_empty()).unwrap_or("asc");
    if order != "asc" && order != "desc" {
        return Err(fail(
            shared,
            ApiErr::Unprocessable(format!("Invalid sort order: {order:?}")),
        ));
    }
    if sort != "id" {
        return Err(fail(
            shared,
            ApiErr::Unprocessable(format!("Invalid sort mode: {sort:?}")),
        ));
    }
    Ok(order == "desc")
}

/// A `Link` header with `next`, `last`, `first` and `prev` as they apply.
fn link_header(
    base: &str,
    path: &str,
    q: &[(String, String)],
    page: usize,
    limit: usize,
    total: usize,
) -> String {
    let last = total.div_ceil(limit).max(1);
    let keep: Vec<String> = q
        .iter()
        .filter(|(k, _)| k != "page" && k != "limit")
        .map(|(k, v)| format!("{k}={v}"))
        .collect();
    let url = |p: usize| {
        let mut parts = keep.clone();
        parts.push(format!("page={p}"));
        parts.push(format!("limit={limit}"));
        format!("<{base}{path}?{}>", parts.join("&"))
    };
    let mut links = Vec::new();
    if page < last {
        links.push(format!("{}; rel=\"next\"", url(page + 1)));
        links.push(format!("{}; rel=\"last\"", url(last)));
    }
    if page > 1 {
        links.push(format!("{}; rel=\"first\"", url(1)));
        links.push(format!("{}; rel=\"prev\"", url(page - 1)));
    }
    links.join(",")
}

/// `GET /repos/{o}/{r}/actions/jobs/{job_id}`, from 1.25 (go-gitea/gitea v1.26.4
/// routers/api/v1/api.go:1235-1238, `repo.GetWorkflowJob`).
async fn get_job(AxState(shared): Sh, Path(params): Params) -> ApiResult {
    need(&shared, 1, 25)?;
    let scope = scope_of(&shared, &params)?;
    let id = params.get("job_id").and_then(|s| s.parse::<i64>().ok());
    let found = shared.with(|st, _| {
        id.and_then(|id| st.jobs.get(&id))
            .filter(|j| Scope::Repo(j.repo.clone()) == scope)
            .map(|j| st.job_json(j))
    });
    found
        .map(|b| Json(b).into_response())
        .ok_or_else(|| fail(&shared, ApiErr::NotFound("job does not exist".into())))
}

fn repo_name(params: &HashMap<String, String>) -> String {
    format!(
        "{}/{}",
        params.get("owner").map_or("", String::as_str),
        params.get("repo").map_or("", String::as_str)
    )
}

async fn get_repo(AxState(shared): Sh, Path(params): Params) -> ApiResult {
    let name = repo_name(&params);
    shared
        .with(|st, _| st.repos.get(&name).map(|r| st.repo_json(r)))
        .map(|b| Json(b).into_response())
        .ok_or_else(|| {
            fail(
                &shared,
                ApiErr::NotFound(format!("repository {name} does not exist")),
            )
        })
}

async fn contents_root(sh: Sh, Path(params): Params, q: RawQuery) -> ApiResult {
    contents_at(sh, params, String::new(), q).await
}

async fn contents(sh: Sh, Path(mut params): Params, q: RawQuery) -> ApiResult {
    let path = params.remove("filepath").unwrap_or_default();
    contents_at(sh, params, path, q).await
}

async fn contents_at(
    AxState(shared): Sh,
    params: HashMap<String, String>,
    path: String,
    RawQuery(q): RawQuery,
) -> ApiResult {
    let name = repo_name(&params);
    let q = query_pairs(q.as_deref());
    let reference = first(&q, "ref").unwrap_or("").to_owned();
    let path = path.trim_matches('/').to_owned();
    let found = shared.with(|st, _| {
        let repo = st.repos.get(&name)?;
        let commit = repo.resolve(&reference)?;
        let label = if reference.is_empty() {
            repo.default_branch.clone()
        } else {
            reference.clone()
        };
        match repo.entry(&commit, &path)? {
            Entry::File(bytes) => {
                Some(st.contents_json(repo, &commit, &label, &path, &Entry::File(bytes), true))
            }
            Entry::Dir(children) => {
                let items: Vec<Value> = children
                    .iter()
                    .filter_map(|(child, _)| {
                        let child_path = if path.is_empty() {
                            child.clone()
                        } else {
                            format!("{path}/{child}")
                        };
                        let entry = repo.entry(&commit, &child_path)?;
                        Some(st.contents_json(repo, &commit, &label, &child_path, &entry, false))
                    })
                    .collect();
                Some(Value::Array(items))
            }
        }
    });
    found.map(|b| Json(b).into_response()).ok_or_else(|| {
        fail(
            &shared,
            ApiErr::NotFound(format!("{name}: no {path:?} at ref {reference:?}")),
        )
    })
}

async fn raw(AxState(shared): Sh, Path(params): Params, RawQuery(q): RawQuery) -> ApiResult {
    let name = repo_name(&params);
    let path = params.get("filepath").cloned().unwrap_or_default();
    let q = query_pairs(q.as_deref());
    let reference = first(&q, "ref").unwrap_or("").to_owned();
    let bytes = shared.with(|st, _| {
        let repo = st.repos.get(&name)?;
        let commit = repo.resolve(&reference)?;
        match repo.entry(&commit, &path)? {
            Entry::File(b) => Some(b),
            Entry::Dir(_) => None,
        }
    });
    match bytes {
        Some(b) => {
            let mut headers = HeaderMap::new();
            let kind = if std::str::from_utf8(&b).is_ok() {
                "text/plain; charset=utf-8"
            } else {
                "application/octet-stream"
            };
            headers.insert(header::CONTENT_TYPE, HeaderValue::from_static(kind));
            Ok((headers, b).into_response())
        }
        None => Err(fail(
            &shared,
            ApiErr::NotFound(format!("{name}: no file {path:?} at ref {reference:?}")),
        )),
    }
}

/// Query booleans that default to true (`files`, `stat`, `verification`).
fn flag(q: &[(String, String)], key: &str) -> bool {
    first(q, key).is_none_or(|v| v.is_empty() || v == "true" || v == "1")
}

async fn compare(AxState(shared): Sh, Path(params): Params, RawQuery(q): RawQuery) -> ApiResult {
    let name = repo_name(&params);
    let basehead = params.get("basehead").cloned().unwrap_or_default();
    let q = query_pairs(q.as_deref());
    let (files, verification) = (flag(&q, "files"), flag(&q, "verification"));
    let (base, head) = basehead
        .split_once("...")
        .or_else(|| basehead.split_once(".."))
        .ok_or_else(|| {
            fail(
                &shared,
                ApiErr::NotFound(format!("{basehead:?} is not base...head")),
            )
        })?;
    let body = shared.with(|st, _| {
        let repo = st.repos.get(&name)?;
        let (b, h) = (repo.resolve(base)?, repo.resolve(head)?);
        let commits: Vec<Value> = repo
            .commits_between(&b, &h)
            .iter()
            .map(|c| st.commit_json(repo, c, files, true, verification))
            .collect();
        Some(json!({"total_commits": commits.len(), "commits": commits}))
    });
    body.map(|b| Json(b).into_response()).ok_or_else(|| {
        fail(
            &shared,
            ApiErr::NotFound(format!("{name}: cannot compare {basehead}")),
        )
    })
}

async fn git_commit(AxState(shared): Sh, Path(params): Params, RawQuery(q): RawQuery) -> ApiResult {
    let name = repo_name(&params);
    let sha = params.get("sha").cloned().unwrap_or_default();
    let q = query_pairs(q.as_deref());
    let body = shared.with(|st, _| {
        let repo = st.repos.get(&name)?;
        let full = repo.resolve(&sha)?;
        Some(st.commit_json(
            repo,
            &full,
            flag(&q, "files"),
            flag(&q, "stat"),
            flag(&q, "verification"),
        ))
    });
    body.map(|b| Json(b).into_response()).ok_or_else(|| {
        fail(
            &shared,
            ApiErr::NotFound(format!("{name}: no commit {sha}")),
        )
    })
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn query_pairs_keep_repeated_keys_and_decode() {
        let q = query_pairs(Some("status=queued&status=in_progress&ref=a%2Fb&x=1+2"));
        assert_eq!(
            q,
            vec![
                ("status".into(), "queued".into()),
                ("status".into(), "in_progress".into()),
                ("ref".into(), "a/b".into()),
                ("x".into(), "1 2".into()),
            ]
        );
    }

    #[test]
    fn paging_defaults_to_30_caps_at_50_and_starts_at_page_1() {
        assert_eq!(paging(&[]), (1, 30));
        assert_eq!(paging(&query_pairs(Some("page=0&limit=500"))), (1, 50));
        assert_eq!(paging(&query_pairs(Some("page=3&limit=-1"))), (3, 30));
    }

    #[test]
    fn link_header_points_to_next_and_last_pages() {
        let link = link_header(
            "http://h",
            "/api/v1/admin/actions/jobs",
            &[("status".into(), "queued".into())],
            1,
            2,
            5,
        );
        assert_eq!(
            link,
            "<http://h/api/v1/admin/actions/jobs?status=queued&page=2&limit=2>; rel=\"next\",\
             <http://h/api/v1/admin/actions/jobs?status=queued&page=3&limit=2>; rel=\"last\""
        );
    }
}
