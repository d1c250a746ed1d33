//! The Bot API description (methods with their fields, types with theirs) as
//! JSON Schema: a request's parameters — from the query string, a form, JSON
//! or multipart, as Telegram takes them all — are checked against the method's
//! fields; an answer's `result` against the method's return type, every object
//! closed to the fields the spec lists.

use std::collections::HashMap;
use std::sync::{Arc, Mutex};

use serde_json::{Map, Value, json};

use super::{Exchange, Violation, validate};

pub struct BotApi {
    /// `$defs`: every type; `methods`: each method's parameters and `returns`.
    doc: Value,
    /// Lower-case method name → its name as the spec spells it.
    names: HashMap<String, String>,
    validators: Mutex<HashMap<String, Arc<jsonschema::Validator>>>,
}

/// One Bot API type name (`Integer`, `Array of PhotoSize`, `Message`…) as a schema.
fn type_schema(t: &str, types: &Map<String, Value>) -> Value {
    if let Some(inner) = t.strip_prefix("Array of ") {
        return json!({"type": "array", "items": type_schema(inner, types)});
    }
    match t {
        "Integer" => json!({"type": "integer"}),
        "Float" => json!({"type": "number"}),
        "String" => json!({"type": "string"}),
        "Boolean" => json!({"type": "boolean"}),
        "True" => json!({"const": true}),
        // A file upload in multipart, or a file_id / URL string.
        "InputFile" => json!({"type": "string"}),
        name if types.contains_key(name) => json!({"$ref": format!("#/$defs/{name}")}),
        other => panic!("the Bot API spec names an unknown type {other:?}"),
    }
}

fn alternatives(list: &Value, types: &Map<String, Value>) -> Value {
    let mut schemas: Vec<Value> = list
        .as_array()
        .into_iter()
        .flatten()
        .filter_map(Value::as_str)
        .map(|t| type_schema(t, types))
        .collect();
    match schemas.len() {
        1 => schemas.pop().unwrap(),
        _ => json!({"anyOf": schemas}),
    }
}

/// The field and value that tell a subtype from its siblings, as the spec
/// words it: a required `String` field (`type`, `status`, `source`) described
/// as `…, always "bold"` or `…, must be animation`.
fn discriminator(t: &Value) -> Option<(String, String)> {
    t.get("subtype_of")?;
    t["fields"].as_array()?.iter().find_map(|f| {
        if f["required"] != true || f["types"] != json!(["String"]) {
            return None;
        }
        let d = f["description"].as_str()?.trim_end_matches('.');
        let (_, value) = d.rsplit_once("always ").or(d.rsplit_once("must be "))?;
        let value = value.trim_matches(|c| matches!(c, '"' | '“' | '”'));
        let word = !value.is_empty()
            && value
                .chars()
                .all(|c| c.is_ascii_lowercase() || c.is_ascii_digit() || c == '_');
        word.then(|| {
            (
                f["name"].as_str().unwrap_or_default().to_owned(),
                value.to_owned(),
            )
        })
    })
}

/// One alternative of a union type: its discriminator checked first (a
/// cheap `const`), so a wrong branch fails before its members are walked;
/// without it recursive unions (`RichText` in `RichTextBold`…) take time
/// exponential in their depth.
fn subtype(name: &str, types: &Map<String, Value>) -> Value {
    let schema = type_schema(name, types);
    match types.get(name).and_then(discriminator) {
        Some((field, value)) => json!({"allOf": [
            {"properties": {field.clone(): {"const": value}}, "required": [field]},
            schema
        ]}),
        None => schema,
    }
}

/// An object with exactly `fields` (name, types, required); the
/// discriminator of a subtype (`discriminator`) is a `const`.
fn object(t: &Value, types: &Map<String, Value>) -> Value {
    let fields = &t["fields"];
    let tag = discriminator(t);
    let mut properties = Map::new();
    let mut required = Vec::new();
    for f in fields.as_array().into_iter().flatten() {
        let name = f["name"].as_str().unwrap_or_default().to_owned();
        let schema = match &tag {
            Some((field, value)) if *field == name => json!({"const": value}),
            _ => alternatives(&f["types"], types),
        };
        properties.insert(name.clone(), schema);
        if f["required"] == true {
            required.push(Value::String(name));
        }
    }
    json!({"type": "object", "properties": properties, "required": required, "additionalProperties": false})
}

impl BotApi {
    pub fn from_document(spec: &Value) -> BotApi {
        let types = spec["types"].as_object().cloned().unwrap_or_default();
        let mut defs = Map::new();
        for (name, t) in &types {
            let schema = match t.get("subtypes").and_then(Value::as_array) {
                Some(subs) => json!({"anyOf": subs
                    .iter()
                    .filter_map(Value::as_str)
                    .map(|s| subtype(s, &types))
                    .collect::<Vec<_>>()}),
                None => object(t, &types),
            };
            defs.insert(name.clone(), schema);
        }
        let mut methods = Map::new();
        let mut names = HashMap::new();
        for (name, m) in spec["methods"].as_object().into_iter().flatten() {
            names.insert(name.to_ascii_lowercase(), name.clone());
            let fields = m["fields"].clone();
            methods.insert(
                name.clone(),
                json!({
                    "params": object(&json!({"fields": fields}), &types),
                    "fields": fields,
                    "description": m["description"].clone(),
                    "ok": {
                        "type": "object",
                        "required": ["ok", "result"],
                        "properties": {
                            "ok": {"const": true},
                            "result": alternatives(&m["returns"], &types),
                            "description": {"type": "string"}
                        },
                        "additionalProperties": false
                    }
                }),
            );
        }
        let error = json!({
            "type": "object",
            "required": ["ok", "error_code", "description"],
            "properties": {
                "ok": {"const": false},
                "error_code": {"type": "integer"},
                "description": {"type": "string"},
                "parameters": {"$ref": "#/$defs/ResponseParameters"}
            },
            "additionalProperties": false
        });
        BotApi {
            doc: json!({"$defs": defs, "methods": methods, "error": error}),
            names,
            validators: Mutex::new(HashMap::new()),
        }
    }

    fn validator(&self, pointer: &str) -> Arc<jsonschema::Validator> {
        let mut cache = self.validators.lock().unwrap();
        if let Some(v) = cache.get(pointer) {
            return v.clone();
        }
        let mut root = self.doc.pointer(pointer).unwrap().clone();
        root.as_object_mut()
            .unwrap()
            .insert("$defs".into(), self.doc["$defs"].clone());
        let v = Arc::new(
            jsonschema::options()
                .with_draft(jsonschema::Draft::Draft202012)
                .build(&root)
                .unwrap_or_else(|e| panic!("{pointer}: {e}")),
        );
        cache.insert(pointer.to_owned(), v.clone());
        v
    }

    /// The method a `/bot<token>/<method>` path names (method names are
    /// case-insensitive in the Bot API).
    fn method(&self, path: &str) -> Option<&str> {
        let (bot, method) = path.trim_start_matches('/').split_once('/')?;
        if !bot.starts_with("bot") {
            return None;
        }
        self.names
            .get(&method.to_ascii_lowercase())
            .map(String::as_str)
    }

    /// A method's schema for a type in the type of the value named by the
    /// field: query and form values are text, read as the field's types.
    fn typed(&self, method: &str, name: &str, text: &str) -> Value {
        let fields = &self.doc["methods"][method]["fields"];
        let types: Vec<&str> = fields
            .as_array()
            .into_iter()
            .flatten()
            .find(|f| f["name"] == name)
            .map(|f| {
                f["types"]
                    .as_array()
                    .into_iter()
                    .flatten()
                    .filter_map(Value::as_str)
                    .collect()
            })
            .unwrap_or_default();
        for t in &types {
            let v = match *t {
                "Integer" => text.parse::<i64>().ok().map(Value::from),
                "Float" => text.parse::<f64>().ok().map(|f| json!(f)),
                "Boolean" | "True" => match text {
                    "true" => Some(Value::Bool(true)),
                    "false" => Some(Value::Bool(false)),
                    _ => None,
                },
                "String" | "InputFile" => Some(Value::String(text.to_owned())),
                // Arrays and objects travel JSON-serialized.
                _ => serde_json::from_str(text).ok(),
            };
            if let Some(v) = v {
                return v;
            }
        }
        Value::String(text.to_owned())
    }

    pub fn check_request(&self, ex: &Exchange, out: &mut Vec<Violation>) {
        let endpoint = ex.endpoint();
        if is_file_download(&ex.path) {
            // `https://api.telegram.org/file/bot<token>/<file_path>`, as getFile documents it.
            let documented = self.doc["methods"]["getFile"]["description"]
                .to_string()
                .contains("/file/bot<token>/<file_path>");
            if !documented || ex.method != "GET" || !ex.body.is_empty() {
                out.push(Violation::new(
                    &endpoint,
                    "request",
                    "GET /file/bot<token>/<file_path> without a body (getFile)",
                    &format!("{} with {} body bytes", ex.method, ex.body.len()),
                ));
            }
            return;
        }
        let Some(method) = self.method(&ex.path) else {
            out.push(Violation::new(
                &endpoint,
                "request",
                "a Bot API method",
                "no such method in the Bot API",
            ));
            return;
        };
        let method = method.to_owned();
        let mut params = Map::new();
        for (k, v) in &ex.query {
            params.insert(k.clone(), self.typed(&method, k, v));
        }
        let mime = ex
            .content_type
            .as_deref()
            .unwrap_or("")
            .split(';')
            .next()
            .unwrap_or("")
            .trim()
            .to_ascii_lowercase();
        if !ex.body.is_empty() {
            match mime.as_str() {
                "application/json" => match serde_json::from_slice::<Value>(&ex.body) {
                    Ok(Value::Object(map)) => params.extend(map),
                    _ => out.push(Violation::new(
                        &endpoint,
                        "request body",
                        "a JSON object",
                        "the body is no JSON object",
                    )),
                },
                "application/x-www-form-urlencoded" => {
                    for (k, v) in super::parse_query(&String::from_utf8_lossy(&ex.body)) {
                        let typed = self.typed(&method, &k, &v);
                        params.insert(k, typed);
                    }
                }
                "multipart/form-data" => {
                    let boundary = ex
                        .content_type
                        .as_deref()
                        .and_then(|c| c.split("boundary=").nth(1))
                        .unwrap_or("")
                        .trim_matches('"')
                        .to_owned();
                    for (k, v) in multipart(&ex.body, &boundary) {
                        let typed = self.typed(&method, &k, &v);
                        params.insert(k, typed);
                    }
                }
                other => out.push(Violation::new(
                    &endpoint,
                    "request body",
                    "query, form, JSON or multipart",
                    &format!("content type {other:?}"),
                )),
            }
        }
        let pointer = format!("/methods/{method}/params");
        validate(
            &self.validator(&pointer),
            &Value::Object(params),
            &endpoint,
            "parameters",
            out,
        );
    }

    pub fn check_response(
        &self,
        ex: &Exchange,
        status: u16,
        v: &Value,
        place: &str,
        out: &mut Vec<Violation>,
    ) {
        let endpoint = ex.endpoint();
        let Some(method) = self.method(&ex.path) else {
            return; // the request's violation says it
        };
        let pointer = if status == 200 {
            format!("/methods/{method}/ok")
        } else {
            "/error".to_owned()
        };
        validate(&self.validator(&pointer), v, &endpoint, place, out);
        if status != 200 && v["error_code"] != status {
            out.push(Violation::new(
                &endpoint,
                place,
                "error_code is the HTTP status",
                &format!("HTTP {status}, error_code {}", v["error_code"]),
            ));
        }
    }

    /// One update (as a webhook delivery carries it) against `Update`.
    pub fn check_update(&self, v: &Value, endpoint: &str, out: &mut Vec<Violation>) {
        let key = "/$defs/Update";
        let validator = {
            let mut cache = self.validators.lock().unwrap();
            cache
                .entry(key.to_owned())
                .or_insert_with(|| {
                    Arc::new(
                        jsonschema::options()
                            .with_draft(jsonschema::Draft::Draft202012)
                            .build(&json!({"$ref": "#/$defs/Update", "$defs": self.doc["$defs"]}))
                            .unwrap(),
                    )
                })
                .clone()
        };
        validate(&validator, v, endpoint, "update", out);
    }

    /// The converted document (`$defs` hold the types).
    pub fn doc(&self) -> &Value {
        &self.doc
    }

    /// The type names an `Update` may carry besides `update_id`.
    pub fn update_fields(&self) -> Vec<String> {
        self.doc["$defs"]["Update"]["properties"]
            .as_object()
            .map(|m| m.keys().filter(|k| *k != "update_id").cloned().collect())
            .unwrap_or_default()
    }
}

/// The text fields of a `multipart/form-data` body.
fn multipart(body: &[u8], boundary: &str) -> Vec<(String, String)> {
    let text = String::from_utf8_lossy(body);
    let delimiter = format!("--{boundary}");
    text.split(delimiter.as_str())
        .filter_map(|part| {
            let part = part.strip_prefix("\r\n")?;
            let (head, value) = part.split_once("\r\n\r\n")?;
            let name = head.split("name=\"").nth(1)?.split('"').next()?.to_owned();
            Some((name, value.strip_suffix("\r\n").unwrap_or(value).to_owned()))
        })
        .collect()
}

/// A download from the file endpoint (`/file/bot<token>/<file_path>`).
pub fn is_file_download(path: &str) -> bool {
    path.strip_prefix("/file/bot")
        .and_then(|rest| rest.split_once('/'))
        .is_some_and(|(token, file)| !token.is_empty() && !file.is_empty())
}
