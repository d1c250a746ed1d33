//! X's OpenAPI 3.0 description as a judge: the document is turned into JSON
//! Schema 2020-12 once (`nullable`, discriminators, 3.0's boolean
//! `exclusiveMinimum`, closed objects), then each request and each answer is
//! checked against the operation it names.

use std::collections::HashMap;
use std::sync::{Arc, Mutex};

use serde_json::{Map, Value, json};

use super::{Exchange, Violation, validate};

/// One operation of the document: method, path template, and where it lives.
struct Operation {
    method: String,
    template: String,
    /// `/paths/<escaped template>/<method>` in the converted document.
    pointer: String,
    /// Path- and operation-level parameters, `$ref`s resolved.
    parameters: Vec<Value>,
}

/// The converted document and the validators built from it so far.
pub struct OpenApi {
    doc: Value,
    ops: Vec<Operation>,
    validators: Mutex<HashMap<String, Arc<jsonschema::Validator>>>,
}

impl OpenApi {
    pub fn from_document(mut doc: Value) -> OpenApi {
        convert(&mut doc, false);
        let mut ops = Vec::new();
        let paths = doc["paths"].as_object().cloned().unwrap_or_default();
        for (template, item) in &paths {
            let shared: Vec<Value> = item["parameters"].as_array().cloned().unwrap_or_default();
            for (method, op) in item.as_object().into_iter().flatten() {
                if !["get", "post", "put", "delete", "patch"].contains(&method.as_str()) {
                    continue;
                }
                let own: Vec<Value> = op["parameters"].as_array().cloned().unwrap_or_default();
                let parameters = shared
                    .iter()
                    .chain(&own)
                    .map(|p| resolve(&doc, p).clone())
                    .collect();
                ops.push(Operation {
                    method: method.to_uppercase(),
                    template: template.clone(),
                    pointer: format!("/paths/{}/{method}", escape(template)),
                    parameters,
                });
            }
        }
        OpenApi {
            doc,
            ops,
            validators: Mutex::new(HashMap::new()),
        }
    }

    /// The operation for `method path`: literal segments beat `{templates}`.
    fn operation(&self, method: &str, path: &str) -> Option<&Operation> {
        let segments: Vec<&str> = path.split('/').collect();
        self.ops
            .iter()
            .filter(|op| op.method == method)
            .filter_map(|op| {
                let t: Vec<&str> = op.template.split('/').collect();
                if t.len() != segments.len() {
                    return None;
                }
                let mut literal = 0;
                for (a, b) in t.iter().zip(&segments) {
                    if a.starts_with('{') && a.ends_with('}') {
                        if b.is_empty() {
                            return None;
                        }
                    } else if a == b {
                        literal += 1;
                    } else {
                        return None;
                    }
                }
                Some((literal, op))
            })
            .max_by_key(|(literal, _)| *literal)
            .map(|(_, op)| op)
    }

    /// The converted document (`components` hold the schemas).
    pub fn doc(&self) -> &Value {
        &self.doc
    }

    /// The template of the operation `method path` names, if any.
    pub fn template(&self, method: &str, path: &str) -> Option<String> {
        self.operation(method, path).map(|op| op.template.clone())
    }

    fn validator(&self, pointer: &str) -> Arc<jsonschema::Validator> {
        let schema = self
            .doc
            .pointer(pointer)
            .unwrap_or_else(|| panic!("no schema at {pointer}"));
        self.compiled(pointer, schema)
    }

    /// `schema` compiled with the document's components beside it, cached
    /// under `key`.
    fn compiled(&self, key: &str, schema: &Value) -> Arc<jsonschema::Validator> {
        let mut cache = self.validators.lock().unwrap();
        if let Some(v) = cache.get(key) {
            return v.clone();
        }
        let mut root = schema.clone();
        if let Value::Object(map) = &mut root {
            map.insert("components".into(), self.doc["components"].clone());
        }
        let v = Arc::new(
            jsonschema::options()
                .with_draft(jsonschema::Draft::Draft202012)
                .build(&root)
                .unwrap_or_else(|e| panic!("the schema {key} does not compile: {e}")),
        );
        cache.insert(key.to_owned(), v.clone());
        v
    }

    /// Checks what the client sent.
    pub fn check_request(&self, ex: &Exchange, out: &mut Vec<Violation>) {
        let endpoint = ex.endpoint();
        let Some(op) = self.operation(&ex.method, &ex.path) else {
            out.push(Violation::new(
                &endpoint,
                "request",
                "the operation exists",
                "no such method and path in the spec",
            ));
            return;
        };
        let declared = |name: &str, place: &str| {
            op.parameters
                .iter()
                .position(|p| p["name"] == name && p["in"] == place)
        };
        // Path parameters.
        let t: Vec<&str> = op.template.split('/').collect();
        for (seg, value) in t.iter().zip(ex.path.split('/')) {
            if let Some(name) = seg.strip_prefix('{').and_then(|s| s.strip_suffix('}')) {
                match declared(name, "path") {
                    Some(i) => {
                        self.check_value(op, i, &format!("path {name}"), value, &endpoint, out)
                    }
                    None => out.push(Violation::new(
                        &endpoint,
                        &format!("path {name}"),
                        "declared",
                        "a path parameter the operation does not declare",
                    )),
                }
            }
        }
        // Query parameters.
        let mut seen = Vec::new();
        for (name, value) in &ex.query {
            seen.push(name.clone());
            match declared(name, "query") {
                Some(i) => self.check_value(op, i, &format!("query {name}"), value, &endpoint, out),
                None => out.push(Violation::new(
                    &endpoint,
                    &format!("query {name}"),
                    "declared",
                    "the operation declares no such query parameter",
                )),
            }
        }
        for p in &op.parameters {
            if p["in"] == "query"
                && p["required"] == true
                && !seen.iter().any(|s| p["name"] == s.as_str())
            {
                out.push(Violation::new(
                    &endpoint,
                    &format!("query {}", p["name"].as_str().unwrap_or("")),
                    "required",
                    "a required parameter is missing",
                ));
            }
        }
        // The body.
        let body = &self.doc.pointer(&op.pointer).unwrap()["requestBody"];
        let json_body = ex.body.iter().any(|b| !b.is_ascii_whitespace());
        match (body.is_object(), json_body) {
            (false, false) => {}
            (false, true) => out.push(Violation::new(
                &endpoint,
                "request body",
                "no requestBody",
                "a body sent to an operation that takes none",
            )),
            (true, false) if body["required"] == true => out.push(Violation::new(
                &endpoint,
                "request body",
                "requestBody.required",
                "the operation requires a body",
            )),
            (true, false) => {}
            (true, true) => match serde_json::from_slice::<Value>(&ex.body) {
                Err(e) => out.push(Violation::new(
                    &endpoint,
                    "request body",
                    "application/json",
                    &format!("not JSON: {e}"),
                )),
                Ok(v) => {
                    let pointer = format!(
                        "{}/requestBody/content/application~1json/schema",
                        op.pointer
                    );
                    if self.doc.pointer(&pointer).is_none() {
                        out.push(Violation::new(
                            &endpoint,
                            "request body",
                            "content type",
                            "the operation takes no JSON body",
                        ));
                    } else {
                        validate(
                            &self.validator(&pointer),
                            &v,
                            &endpoint,
                            "request body",
                            out,
                        );
                    }
                }
            },
        }
    }

    /// A parameter's text read as its schema's type, then validated.
    fn check_value(
        &self,
        op: &Operation,
        index: usize,
        place: &str,
        text: &str,
        endpoint: &str,
        out: &mut Vec<Violation>,
    ) {
        let schema = &op.parameters[index]["schema"];
        let value = match typed(schema, text) {
            Ok(v) => v,
            Err(rule) => {
                out.push(Violation::new(endpoint, place, &rule, &format!("{text:?}")));
                return;
            }
        };
        // Parameters may be `$ref`s into components/parameters: validate the
        // resolved copy through an inline root.
        let validator = self.compiled(&format!("{}#param:{place}", op.pointer), schema);
        validate(&validator, &value, endpoint, place, out);
    }

    /// The schema pointer of the answer `status` with `content_type`.
    pub fn response_schema(
        &self,
        method: &str,
        path: &str,
        status: u16,
        content_type: &str,
    ) -> Result<String, (String, String)> {
        let op = self
            .operation(method, path)
            .ok_or(("the operation exists".to_owned(), String::new()))?;
        let responses = &self.doc.pointer(&op.pointer).unwrap()["responses"];
        let code = status.to_string();
        let key = if responses.get(&code).is_some() {
            code
        } else if responses.get("default").is_some() && !(200..300).contains(&status) {
            "default".to_owned()
        } else {
            return Err((
                format!(
                    "declared statuses {:?}",
                    responses
                        .as_object()
                        .map(|m| m.keys().cloned().collect::<Vec<_>>())
                ),
                format!("status {status} is not declared"),
            ));
        };
        let mime = content_type
            .split(';')
            .next()
            .unwrap_or("")
            .trim()
            .to_ascii_lowercase();
        let content = &responses[&key]["content"];
        if content.get(&mime).is_none() {
            return Err((
                format!(
                    "content types {:?}",
                    content
                        .as_object()
                        .map(|m| m.keys().cloned().collect::<Vec<_>>())
                ),
                format!("content type {mime:?} is not declared for {key}"),
            ));
        }
        Ok(format!(
            "{}/responses/{key}/content/{}/schema",
            op.pointer,
            escape(&mime)
        ))
    }

    /// Checks one answer (or one stream line) against the schema at `pointer`.
    pub fn check_body(
        &self,
        pointer: &str,
        v: &Value,
        endpoint: &str,
        place: &str,
        out: &mut Vec<Violation>,
    ) {
        validate(&self.validator(pointer), v, endpoint, place, out);
    }
}

/// A query or path parameter's text as the JSON value its schema wants; the
/// rule it breaks otherwise.
fn typed(schema: &Value, text: &str) -> Result<Value, String> {
    let kind = schema["type"].as_str().unwrap_or("string");
    let scalar = |kind: &str, text: &str| -> Result<Value, String> {
        match kind {
            "integer" => text
                .parse::<i64>()
                .map(Value::from)
                .map_err(|_| "type: integer".to_owned()),
            "number" => text
                .parse::<f64>()
                .map(|f| json!(f))
                .map_err(|_| "type: number".to_owned()),
            "boolean" => match text {
                "true" => Ok(Value::Bool(true)),
                "false" => Ok(Value::Bool(false)),
                _ => Err("type: boolean".to_owned()),
            },
            _ => Ok(Value::String(text.to_owned())),
        }
    };
    match kind {
        // `style: form, explode: false`: a comma-separated list.
        "array" => {
            let item = schema["items"]["type"].as_str().unwrap_or("string");
            text.split(',')
                .map(|t| scalar(item, t))
                .collect::<Result<Vec<_>, _>>()
                .map(Value::Array)
        }
        k => scalar(k, text),
    }
}

/// `~` and `/` escaped for a JSON pointer.
pub fn escape(s: &str) -> String {
    s.replace('~', "~0").replace('/', "~1")
}

/// A `$ref` into the document, followed; anything else as is.
fn resolve<'a>(doc: &'a Value, v: &'a Value) -> &'a Value {
    match v.get("$ref").and_then(Value::as_str) {
        Some(r) => doc
            .pointer(r.trim_start_matches('#'))
            .unwrap_or_else(|| panic!("dangling $ref {r}")),
        None => v,
    }
}

/// OpenAPI 3.0 schema dialect → JSON Schema 2020-12, in place:
/// - `nullable: true` adds `null` to the type (or wraps the schema in an `anyOf`);
/// - `oneOf` with a `discriminator` becomes one `if`/`then` per mapping entry,
///   so an answer is checked against the branch its `type` names (and an
///   unknown `type` is an `enum` violation naming the known ones);
/// - 3.0's boolean `exclusiveMinimum`/`exclusiveMaximum` become numbers;
/// - objects that list `properties` and say nothing of others are closed
///   (`unevaluatedProperties: false`): the mock answers only in the spec's
///   shapes and the client sends only declared members.
fn convert(v: &mut Value, in_properties: bool) {
    match v {
        Value::Array(items) => items.iter_mut().for_each(|i| convert(i, false)),
        Value::Object(map) => {
            for (k, child) in map.iter_mut() {
                // A `properties` map's keys are member names, not keywords.
                convert(child, k == "properties" && !in_properties);
            }
            if in_properties {
                return;
            }
            for (flag, bound) in [
                ("exclusiveMinimum", "minimum"),
                ("exclusiveMaximum", "maximum"),
            ] {
                if let Some(Value::Bool(b)) = map.get(flag).cloned() {
                    map.remove(flag);
                    if b && let Some(n) = map.remove(bound) {
                        map.insert(flag.into(), n);
                    }
                }
            }
            if let (Some(disc), Some(_)) = (map.remove("discriminator"), map.get("oneOf")) {
                map.remove("oneOf");
                discriminate(map, &disc);
            }
            if map.get("properties").is_some()
                && map.get("additionalProperties").is_none()
                && map.get("type").is_none_or(|t| t == "object")
            {
                map.insert("unevaluatedProperties".into(), Value::Bool(false));
            }
            if map.remove("nullable") == Some(Value::Bool(true)) {
                nullable(map);
            }
        }
        _ => {}
    }
}

fn discriminate(map: &mut Map<String, Value>, disc: &Value) {
    let prop = disc["propertyName"].as_str().unwrap_or("type").to_owned();
    let mapping = disc["mapping"].as_object().cloned().unwrap_or_default();
    if prop.starts_with("../") {
        // The tag lives on the parent object (2.167's X Activity `payload`,
        // named by `../event_type`), which JSON Schema cannot reach from
        // here: the value must match one of the mapped schemas.
        let mut refs: Vec<&Value> = mapping.values().collect();
        refs.sort_by_key(|r| r.to_string());
        refs.dedup();
        let any: Vec<Value> = refs.into_iter().map(|r| json!({"$ref": r})).collect();
        map.insert("anyOf".into(), Value::Array(any));
        return;
    }
    let branches: Vec<Value> = mapping
        .iter()
        .map(|(k, r)| {
            json!({
                "if": {"properties": {&prop: {"const": k}}, "required": [&prop]},
                "then": {"$ref": r}
            })
        })
        .collect();
    let keys: Vec<&String> = mapping.keys().collect();
    map.insert("type".into(), json!("object"));
    map.insert("required".into(), json!([&prop]));
    map.insert("properties".into(), json!({&prop: {"enum": keys}}));
    map.insert("allOf".into(), Value::Array(branches));
}

fn nullable(map: &mut Map<String, Value>) {
    match map.get("type").cloned() {
        Some(Value::String(t)) => {
            map.insert("type".into(), json!([t, "null"]));
            if let Some(Value::Array(e)) = map.get_mut("enum") {
                e.push(Value::Null);
            }
        }
        _ => {
            let inner = Value::Object(std::mem::take(map));
            map.insert("anyOf".into(), json!([inner, {"type": "null"}]));
        }
    }
}
