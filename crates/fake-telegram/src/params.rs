//! A request's parameters. The Bot API takes a method's parameters as a query
//! string, a JSON body, a urlencoded form or multipart/form-data; [`Params`]
//! reads them with axum's `Query`, `Json`, `Form` and `Multipart` extractors,
//! chosen by `Content-Type`, into one map (the body's values win over the
//! query's), with file parts kept aside. The typed getters below read that map
//! the way Telegram reads a parameter (numbers as numbers or text, JSON-valued
//! parameters as JSON or JSON text).

use axum::body::{Body, Bytes};
use axum::extract::multipart::MultipartError;
use axum::extract::{FromRequest, FromRequestParts, Multipart, Query, Request};
use axum::http::header;
use axum::{Form, Json};
use serde_json::{Map, Value};

use crate::call::{Failure, Upload};

/// Parameters Telegram reads as JSON; form and multipart requests send them as
/// JSON text, which the fake parses so every recorded call looks alike.
const JSON_PARAMS: [&str; 9] = [
    "reply_markup",
    "commands",
    "scope",
    "allowed_updates",
    "message_ids",
    "entities",
    "caption_entities",
    "link_preview_options",
    "reply_parameters",
];

/// A request's parameters: the query's, then the body's.
#[derive(Default)]
pub(crate) struct Params {
    /// Every text parameter; JSON-valued ones (`JSON_PARAMS`) parsed.
    pub(crate) fields: Map<String, Value>,
    /// The file parts of a multipart body.
    pub(crate) files: Vec<FilePart>,
}

/// A file part of a multipart request.
pub(crate) struct FilePart {
    /// The part's name: the parameter (`document`), or what `attach://` names.
    pub(crate) name: String,
    pub(crate) upload: Upload,
}

/// An unreadable request is a 400 with why; the handler takes
/// `Result<Params, Failure>`, so the token is checked first all the same.
impl<S: Send + Sync> FromRequest<S> for Params {
    type Rejection = Failure;

    async fn from_request(request: Request, state: &S) -> Result<Params, Failure> {
        let (mut parts, body) = request.into_parts();
        let mut params = Params::default();
        let Query(query) = Query::<Vec<(String, String)>>::from_request_parts(&mut parts, state)
            .await
            .map_err(|rejection| {
                Failure::bad_request(format!("Bad Request: {}", rejection.body_text()))
            })?;
        params.insert_texts(query);
        let mime = parts
            .headers
            .get(header::CONTENT_TYPE)
            .and_then(|value| value.to_str().ok())
            .unwrap_or_default()
            .split(';')
            .next()
            .unwrap_or_default()
            .trim()
            .to_ascii_lowercase();
        // Read once under the body limit, so that a blank body counts as none
        // whatever its `Content-Type`; the extractors below get it back.
        let body = Bytes::from_request(Request::from_parts(parts.clone(), body), state)
            .await
            .map_err(|rejection| {
                Failure::new(rejection.status().as_u16(), &rejection.body_text())
            })?;
        if body.iter().all(u8::is_ascii_whitespace) {
            return Ok(params);
        }
        let request = Request::from_parts(parts, Body::from(body));
        match mime.as_str() {
            "application/json" => {
                let Json(fields) = Json::<Map<String, Value>>::from_request(request, state)
                    .await
                    .map_err(|rejection| {
                        Failure::bad_request(format!(
                            "Bad Request: can't parse JSON body: {}",
                            rejection.body_text()
                        ))
                    })?;
                params.fields.extend(fields);
            }
            "application/x-www-form-urlencoded" => {
                let Form(pairs) = Form::<Vec<(String, String)>>::from_request(request, state)
                    .await
                    .map_err(|rejection| {
                        Failure::bad_request(format!(
                            "Bad Request: can't parse the form: {}",
                            rejection.body_text()
                        ))
                    })?;
                params.insert_texts(pairs);
            }
            "multipart/form-data" => {
                let multipart =
                    Multipart::from_request(request, state)
                        .await
                        .map_err(|rejection| {
                            Failure::bad_request(format!("Bad Request: {}", rejection.body_text()))
                        })?;
                params.read_multipart(multipart).await?;
            }
            _ => {
                return Err(Failure::bad_request(format!(
                    "Bad Request: unsupported content type \"{mime}\""
                )));
            }
        }
        Ok(params)
    }
}

impl Params {
    fn insert_texts(&mut self, pairs: Vec<(String, String)>) {
        for (name, value) in pairs {
            let value = text_param(&name, value);
            self.fields.insert(name, value);
        }
    }

    /// Text parts become parameters; parts with a file name are files.
    async fn read_multipart(&mut self, mut multipart: Multipart) -> Result<(), Failure> {
        let malformed = |err: MultipartError| {
            Failure::bad_request(format!(
                "Bad Request: malformed multipart body: {}",
                err.body_text()
            ))
        };
        while let Some(field) = multipart.next_field().await.map_err(malformed)? {
            let Some(name) = field.name().map(str::to_owned) else {
                return Err(Failure::bad_request(
                    "Bad Request: malformed multipart body: a part has no name",
                ));
            };
            let file_name = field.file_name().map(str::to_owned);
            let content_type = field.content_type().map(str::to_owned);
            let bytes = field.bytes().await.map_err(malformed)?;
            match file_name {
                Some(file_name) => self.files.push(FilePart {
                    name,
                    upload: Upload {
                        file_name,
                        content_type,
                        bytes: bytes.to_vec(),
                    },
                }),
                None => {
                    let value = String::from_utf8_lossy(&bytes).into_owned();
                    self.insert_texts(vec![(name, value)]);
                }
            }
        }
        Ok(())
    }
}

/// A text parameter, parsed when Telegram reads it as JSON.
fn text_param(name: &str, value: String) -> Value {
    if JSON_PARAMS.contains(&name)
        && let Ok(parsed) = serde_json::from_str::<Value>(&value)
    {
        return parsed;
    }
    Value::String(value)
}

pub(crate) fn integer(value: &Value) -> Option<i64> {
    match value {
        Value::Number(number) => number.as_i64(),
        Value::String(text) => text.trim().parse().ok(),
        _ => None,
    }
}

/// A parameter that was sent and is not `null`.
fn given<'a>(params: &'a Map<String, Value>, name: &str) -> Option<&'a Value> {
    params.get(name).filter(|value| !value.is_null())
}

pub(crate) fn integer_param(
    params: &Map<String, Value>,
    name: &str,
) -> Result<Option<i64>, Failure> {
    given(params, name)
        .map(|value| {
            integer(value).ok_or_else(|| {
                Failure::bad_request(format!("Bad Request: invalid {name} specified"))
            })
        })
        .transpose()
}

pub(crate) fn string_param(params: &Map<String, Value>, name: &str) -> Option<String> {
    match params.get(name)? {
        Value::String(text) => Some(text.clone()),
        Value::Number(number) => Some(number.to_string()),
        Value::Bool(flag) => Some(flag.to_string()),
        _ => None,
    }
}

/// A parameter Telegram reads as JSON, sent as a value or as JSON text.
pub(crate) fn json_param(
    params: &Map<String, Value>,
    name: &str,
) -> Result<Option<Value>, Failure> {
    given(params, name)
        .map(|value| match value {
            Value::String(text) => serde_json::from_str(text).map_err(|_| {
                Failure::bad_request(format!("Bad Request: can't parse {name} JSON object"))
            }),
            value => Ok(value.clone()),
        })
        .transpose()
}

pub(crate) fn chat_id_param(params: &Map<String, Value>) -> Result<i64, Failure> {
    match params.get("chat_id") {
        None | Some(Value::Null) => Err(Failure::bad_request("Bad Request: chat_id is empty")),
        Some(Value::String(text)) if text.is_empty() => {
            Err(Failure::bad_request("Bad Request: chat_id is empty"))
        }
        // Channel usernames are not modelled.
        Some(value) => {
            integer(value).ok_or_else(|| Failure::bad_request("Bad Request: chat not found"))
        }
    }
}

pub(crate) fn message_id_param(params: &Map<String, Value>) -> Result<i32, Failure> {
    params
        .get("message_id")
        .and_then(integer)
        .and_then(|id| i32::try_from(id).ok())
        .ok_or_else(|| Failure::bad_request("Bad Request: message identifier is not specified"))
}
