//! The one way to write a REST resource under `/v1`: a type implementing [`Resource`] states
//! what is its own (the fields a body may have and how each is checked, what a create
//! requires, how it is shown, what must happen after a change), and
//! `resource_endpoints!` gives it the five endpoints with their
//! OpenAPI annotations, its routes and its list schema:
//!
//! - `GET /v1/<plural>`: a page in creation order (`limit` 1..=100, default 10; `cursor`),
//!   `{"num_items", "cursor", "<list key>": [...]}`;
//! - `POST /v1/<plural>`: 201 with the created object;
//! - `GET`, `PATCH` (absent fields are kept, null clears), `DELETE /v1/<plural>/{id}`
//!   (`{"id", "deleted": true}`), 404 `"<What> not found"` for an id the organization does
//!   not have.
//!
//! The storage side is `switchboard_store::Entity` (its table, columns and patch rules).

use crate::auth::Org;
use crate::error::{ApiError, ApiResult};
use crate::extract::{JsonBody, QueryMap};
use crate::AppState;
use axum::extract::{Path, State};
use axum::http::StatusCode;
use axum::response::{IntoResponse, Response};
use axum::Json;
use serde::Serialize;
use serde_json::{json, Map, Value};
use switchboard_domain::{parse_limit, parse_name, CallId, ParseError, PhoneNumber};
use switchboard_store::{decode_seq_cursor, encode_seq_cursor, Entity, StoreError};
use utoipa::{IntoParams, ToSchema};

/// A resource of the native API. See the module documentation.
pub(crate) trait Resource: Send + Sync + 'static {
    type Entity: Entity + Serialize;
    /// Its name in errors: `"<WHAT> not found"`.
    const WHAT: &'static str;
    /// What a malformed id is called in the 400: `"<ID_PARAM> must be a UUID ..."`.
    const ID_PARAM: &'static str;
    /// The key of the array in a list page.
    const LIST_KEY: &'static str;
    /// The fields a body may have; any other is a 400 that lists these.
    const FIELDS: &'static [&'static str];

    /// Reads and checks a body's fields (each error names its field).
    fn patch(o: &Obj) -> ApiResult<Patch<Self>>;
    /// What a create needs beyond a valid patch: its required fields.
    fn check_create(p: &Patch<Self>) -> ApiResult<()>;
    /// Checks of a create's or update's fields that need I/O (an agent's `webhook_url`
    /// must resolve to a public address), run before anything is written.
    fn check(
        _s: &AppState,
        _p: &Patch<Self>,
    ) -> impl std::future::Future<Output = ApiResult<()>> + Send {
        async { Ok(()) }
    }
    /// The JSON a client sees.
    fn render(_s: &AppState, e: &Self::Entity) -> Value {
        to_json(e)
    }
    /// Runs after every successful create, update and delete.
    fn changed(_s: &AppState) {}
}

pub(crate) type Patch<R> = <<R as Resource>::Entity as Entity>::Patch;
type Id<R> = <<R as Resource>::Entity as Entity>::Id;

pub(crate) async fn list<R: Resource>(
    State(s): State<AppState>,
    Org(org): Org,
    q: QueryMap,
) -> ApiResult<Response> {
    let (after, limit) = page_params(&q)?;
    let page = s.store.list::<R::Entity>(org, after, limit).await?;
    let items: Vec<Value> = page.items.iter().map(|e| R::render(&s, e)).collect();
    let (key, cursor) = (R::LIST_KEY, page.next_after.map(encode_seq_cursor));
    Ok(Json(json!({ "num_items": items.len(), "cursor": cursor, key: items })).into_response())
}

pub(crate) async fn create<R: Resource>(
    State(s): State<AppState>,
    Org(org): Org,
    b: JsonBody<Value>,
) -> ApiResult<Response> {
    let p = R::patch(&Obj::new(b.value, R::FIELDS)?)?;
    R::check_create(&p)?;
    R::check(&s, &p).await?;
    let e = s
        .store
        .create::<R::Entity>(org, p)
        .await
        .map_err(|e| write_error(e, R::WHAT))?;
    R::changed(&s);
    Ok((StatusCode::CREATED, Json(R::render(&s, &e))).into_response())
}

pub(crate) async fn get<R: Resource>(
    State(s): State<AppState>,
    Org(org): Org,
    Path(id): Path<String>,
) -> ApiResult<Response> {
    let e = s
        .store
        .get::<R::Entity>(org, parse_id::<R>(&id)?)
        .await
        .map_err(|e| ApiError::from_store(e, R::WHAT))?;
    Ok(Json(R::render(&s, &e)).into_response())
}

pub(crate) async fn update<R: Resource>(
    State(s): State<AppState>,
    Org(org): Org,
    Path(id): Path<String>,
    b: JsonBody<Value>,
) -> ApiResult<Response> {
    let id = parse_id::<R>(&id)?;
    let p = R::patch(&Obj::new(b.value, R::FIELDS)?)?;
    R::check(&s, &p).await?;
    let e = s
        .store
        .update::<R::Entity>(org, id, p)
        .await
        .map_err(|e| write_error(e, R::WHAT))?;
    R::changed(&s);
    Ok(Json(R::render(&s, &e)).into_response())
}

pub(crate) async fn delete<R: Resource>(
    State(s): State<AppState>,
    Org(org): Org,
    Path(id): Path<String>,
) -> ApiResult<Response> {
    let id = parse_id::<R>(&id)?;
    s.store
        .delete::<R::Entity>(org, id)
        .await
        .map_err(|e| ApiError::from_store(e, R::WHAT))?;
    R::changed(&s);
    Ok(deleted(id))
}

fn parse_id<R: Resource>(s: &str) -> ApiResult<Id<R>> {
    // Every id type parses (and words its error) the same way.
    Ok(Id::<R>::from(CallId::parse_param(R::ID_PARAM, s)?.0))
}

/// Page parameters of a resource list: `limit` (1..=100, default 10) and `cursor`.
fn page_params(q: &QueryMap) -> ApiResult<(Option<i64>, u32)> {
    let after = q.opt("cursor", decode_seq_cursor)?;
    let limit = q
        .opt("limit", |v| parse_limit("limit", v, 100))?
        .unwrap_or(10);
    Ok((after, limit))
}

/// Store conflicts on references (an agent or trunk id that does not exist here) are the
/// client's input error.
fn write_error(e: StoreError, what: &str) -> ApiError {
    match e {
        StoreError::Conflict(m) if m.ends_with("does not exist") => ApiError::unprocessable(m),
        e => ApiError::from_store(e, what),
    }
}

/// A JSON integer, also written with a zero fraction (`5.0`), as JSON Schema's `integer`
/// counts it.
pub fn json_int(v: &Value) -> Option<i64> {
    v.as_i64().or_else(|| {
        v.as_f64()
            .filter(|x| x.fract() == 0.0 && x.abs() < 9.0e15)
            .map(|x| x as i64)
    })
}

pub(crate) fn to_json<T: Serialize>(t: &T) -> Value {
    serde_json::to_value(t).unwrap_or(Value::Null)
}

pub(crate) fn deleted<T: std::fmt::Display>(id: T) -> Response {
    Json(json!({ "id": id.to_string(), "deleted": true })).into_response()
}

/// A required field of a create: `"<k> is required: <what>"`.
pub(crate) fn required<T>(v: Option<T>, k: &str, what: &str) -> ApiResult<T> {
    v.ok_or_else(|| ApiError::bad_request(format!("{k} is required: {what}")))
}

/// A JSON object body read field by field, so each error names the field and what it takes.
/// `Some(None)` = present and null (clear it), `None` = absent (leave it).
pub struct Obj(pub Map<String, Value>);

impl Obj {
    pub fn new(v: Value, allowed: &[&str]) -> ApiResult<Obj> {
        let Value::Object(m) = v else {
            return Err(ApiError::bad_request("request body must be a JSON object"));
        };
        if !allowed.is_empty() {
            if let Some(k) = m.keys().find(|k| !allowed.contains(&k.as_str())) {
                return Err(ApiError::bad_request(format!(
                    "unknown field {k:?}; allowed fields: {}",
                    allowed.join(", ")
                )));
            }
        }
        Ok(Obj(m))
    }
    pub fn string(&self, k: &str, max: usize) -> ApiResult<Option<Option<String>>> {
        match self.0.get(k) {
            None => Ok(None),
            Some(Value::Null) => Ok(Some(None)),
            Some(Value::String(s)) if s.chars().count() <= max => Ok(Some(Some(s.clone()))),
            Some(Value::String(_)) => Err(ApiError::bad_request(format!(
                "{k} must be at most {max} characters"
            ))),
            Some(_) => Err(ApiError::bad_request(format!("{k} must be a string"))),
        }
    }
    pub fn name(&self, k: &str) -> ApiResult<Option<String>> {
        match self.string(k, 200)? {
            None => Ok(None),
            Some(None) => Err(ApiError::bad_request(format!("{k} must not be null"))),
            Some(Some(s)) => Ok(Some(parse_name(k, &s, 200)?)),
        }
    }
    pub fn int(&self, k: &str, min: i64, max: i64) -> ApiResult<Option<Option<i64>>> {
        match self.0.get(k) {
            None => Ok(None),
            Some(Value::Null) => Ok(Some(None)),
            Some(v) => match json_int(v) {
                Some(n) if (min..=max).contains(&n) => Ok(Some(Some(n))),
                _ => Err(ApiError::bad_request(format!(
                    "{k} must be an integer between {min} and {max}"
                ))),
            },
        }
    }
    pub fn boolean(&self, k: &str) -> ApiResult<Option<bool>> {
        match self.0.get(k) {
            None | Some(Value::Null) => Ok(None),
            Some(Value::Bool(b)) => Ok(Some(*b)),
            Some(_) => Err(ApiError::bad_request(format!("{k} must be true or false"))),
        }
    }
    /// A field of any JSON type (null clears it); the resource checks its shape.
    pub fn any(&self, k: &str) -> Option<Option<Value>> {
        match self.0.get(k) {
            None => None,
            Some(Value::Null) => Some(None),
            Some(v) => Some(Some(v.clone())),
        }
    }
    pub fn object(&self, k: &str) -> ApiResult<Option<Option<Value>>> {
        match self.0.get(k) {
            None => Ok(None),
            Some(Value::Null) => Ok(Some(None)),
            Some(v @ Value::Object(_)) => Ok(Some(Some(v.clone()))),
            Some(_) => Err(ApiError::bad_request(format!("{k} must be a JSON object"))),
        }
    }
    pub fn phone(&self, k: &str) -> ApiResult<Option<Option<PhoneNumber>>> {
        match self.string(k, 32)? {
            None => Ok(None),
            Some(None) => Ok(Some(None)),
            Some(Some(s)) => {
                Ok(Some(Some(PhoneNumber::parse(&s).map_err(|e| {
                    ApiError::bad_request(format!("{k}: {}", e.message))
                })?)))
            }
        }
    }
    pub fn uuid<T: std::str::FromStr<Err = ParseError> + From<uuid::Uuid>>(
        &self,
        k: &str,
    ) -> ApiResult<Option<Option<T>>> {
        match self.string(k, 64)? {
            None => Ok(None),
            Some(None) => Ok(Some(None)),
            Some(Some(s)) => Ok(Some(Some(
                uuid::Uuid::parse_str(s.trim())
                    .map(T::from)
                    .map_err(|_| ApiError::bad_request(format!("{k} must be a UUID, got {s:?}")))?,
            ))),
        }
    }
}

/// Paging of a resource list.
#[derive(IntoParams)]
#[into_params(parameter_in = Query)]
pub struct PageQuery {
    /// Page size, 1 to 100 (default 10).
    #[param(minimum = 1, maximum = 100)]
    pub limit: Option<u32>,
    /// The `cursor` of the previous page, unchanged.
    #[param(pattern = r"^s1\.[0-9]{1,18}$")]
    pub cursor: Option<String>,
}

/// `{"id": ..., "deleted": true}`.
#[derive(ToSchema)]
pub struct Deleted {
    pub id: uuid::Uuid,
    pub deleted: bool,
}

/// Declares a [`Resource`]'s endpoints: the five annotated handlers (named as given, which
/// names their OpenAPI operations), `routes()`, and the list page's schema. The strings are
/// what the OpenAPI document says: `one` (article and noun) as in "Get an agent", `many` as in
/// "List agents".
///
/// ```ignore
/// resource_endpoints! {
///     resource: Agents, tag: "agents", path: "/v1/agents", item: "/v1/agents/{id}",
///     one: "an" "agent", many: "agents",
///     schema: Agent, input: AgentInput, list: AgentList { agents },
///     handlers: list_agents, create_agent, get_agent, update_agent, delete_agent,
/// }
/// ```
macro_rules! resource_endpoints {
    (
        resource: $r:ident, tag: $tag:tt, path: $path:tt, item: $item:tt,
        one: $a:tt $one:tt, many: $many:tt,
        schema: $schema:ident, input: $input:ident, list: $list_schema:ident { $key:ident },
        handlers: $list:ident, $create:ident, $get:ident, $update:ident, $delete:ident $(,)?
    ) => {
        pub(crate) fn routes() -> axum::Router<crate::AppState> {
            axum::Router::new()
                .route($path, axum::routing::get($list).post($create))
                .route(
                    $item,
                    axum::routing::get($get).patch($update).delete($delete),
                )
        }

        #[derive(utoipa::ToSchema)]
        pub struct $list_schema {
            pub num_items: u32,
            pub cursor: Option<String>,
            pub $key: Vec<$schema>,
        }

        #[utoipa::path(
            get, path = $path, tag = $tag, summary = concat!("List ", $many),
            params(crate::resource::PageQuery),
            responses(
                (status = 200, description = "A page, oldest first", body = $list_schema),
                (status = 400, description = "Invalid limit or cursor", body = crate::error::ErrorBody)
            )
        )]
        pub(crate) async fn $list(
            s: axum::extract::State<crate::AppState>,
            org: crate::auth::Org,
            q: crate::extract::QueryMap,
        ) -> crate::error::ApiResult<axum::response::Response> {
            crate::resource::list::<$r>(s, org, q).await
        }

        #[utoipa::path(
            post, path = $path, tag = $tag, summary = concat!("Create ", $a, " ", $one),
            request_body(content = $input, content_type = "application/json"),
            responses(
                (status = 201, description = "Created", body = $schema),
                (status = 400, description = "Invalid or missing field", body = crate::error::ErrorBody),
                (status = 409, description = "Conflicts with an existing one", body = crate::error::ErrorBody),
                (status = 415, description = "Content-Type is not JSON", body = crate::error::ErrorBody),
                (status = 422, description = "A referenced id does not exist", body = crate::error::ErrorBody)
            )
        )]
        pub(crate) async fn $create(
            s: axum::extract::State<crate::AppState>,
            org: crate::auth::Org,
            b: crate::extract::JsonBody<serde_json::Value>,
        ) -> crate::error::ApiResult<axum::response::Response> {
            crate::resource::create::<$r>(s, org, b).await
        }

        #[utoipa::path(
            get, path = $item, tag = $tag, summary = concat!("Get ", $a, " ", $one),
            params(("id" = uuid::Uuid, Path, description = concat!("The ", $one, "'s id"))),
            responses(
                (status = 200, description = concat!("The ", $one), body = $schema),
                (status = 400, description = "Invalid id", body = crate::error::ErrorBody),
                (status = 404, description = "Not found", body = crate::error::ErrorBody)
            )
        )]
        pub(crate) async fn $get(
            s: axum::extract::State<crate::AppState>,
            org: crate::auth::Org,
            id: axum::extract::Path<String>,
        ) -> crate::error::ApiResult<axum::response::Response> {
            crate::resource::get::<$r>(s, org, id).await
        }

        #[utoipa::path(
            patch, path = $item, tag = $tag, summary = concat!("Update ", $a, " ", $one),
            params(("id" = uuid::Uuid, Path, description = concat!("The ", $one, "'s id"))),
            request_body(content = $input, content_type = "application/json"),
            responses(
                (status = 200, description = "Updated; absent fields are kept, null clears", body = $schema),
                (status = 400, description = "Invalid field", body = crate::error::ErrorBody),
                (status = 404, description = "Not found", body = crate::error::ErrorBody),
                (status = 409, description = "Conflicts with an existing one", body = crate::error::ErrorBody),
                (status = 422, description = "A referenced id does not exist", body = crate::error::ErrorBody)
            )
        )]
        pub(crate) async fn $update(
            s: axum::extract::State<crate::AppState>,
            org: crate::auth::Org,
            id: axum::extract::Path<String>,
            b: crate::extract::JsonBody<serde_json::Value>,
        ) -> crate::error::ApiResult<axum::response::Response> {
            crate::resource::update::<$r>(s, org, id, b).await
        }

        #[utoipa::path(
            delete, path = $item, tag = $tag, summary = concat!("Delete ", $a, " ", $one),
            params(("id" = uuid::Uuid, Path, description = concat!("The ", $one, "'s id"))),
            responses(
                (status = 200, description = "Deleted", body = crate::resource::Deleted),
                (status = 400, description = "Invalid id", body = crate::error::ErrorBody),
                (status = 404, description = "Not found", body = crate::error::ErrorBody)
            )
        )]
        pub(crate) async fn $delete(
            s: axum::extract::State<crate::AppState>,
            org: crate::auth::Org,
            id: axum::extract::Path<String>,
        ) -> crate::error::ApiResult<axum::response::Response> {
            crate::resource::delete::<$r>(s, org, id).await
        }
    };
}
pub(crate) use resource_endpoints;
