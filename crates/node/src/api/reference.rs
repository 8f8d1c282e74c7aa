//! A human-readable reference of the API, rendered once from the OpenAPI document itself (so it
//! says what the document says), as one self-contained HTML page: no script, no asset fetched
//! from anywhere (the pages' security policy would refuse them anyway).

use std::fmt::Write;
use std::sync::OnceLock;

use serde_json::Value;

/// The page, built once per process.
pub fn html() -> &'static str {
    static PAGE: OnceLock<String> = OnceLock::new();
    PAGE.get_or_init(|| {
        let doc: Value = serde_json::from_str(super::openapi::json()).unwrap_or_default();
        render(&doc)
    })
}

fn escape(text: &str) -> String {
    text.replace('&', "&amp;").replace('<', "&lt;").replace('>', "&gt;").replace('"', "&quot;")
}

/// `#/components/x/Name` → `Name`; an inline schema → its type.
fn schema_name(schema: &Value) -> String {
    if let Some(reference) = schema.get("$ref").and_then(Value::as_str) {
        return reference.rsplit('/').next().unwrap_or(reference).to_owned();
    }
    match (schema.get("type"), schema.get("items")) {
        (Some(Value::String(t)), Some(items)) if t == "array" => format!("[{}]", schema_name(items)),
        (Some(t), _) => t.to_string().trim_matches('"').to_owned(),
        (None, _) => "object".to_owned(),
    }
}

fn render(doc: &Value) -> String {
    let mut page = String::from(
        "<!doctype html><html lang=\"en\"><head><meta charset=\"utf-8\"><title>API reference</title>\
         <style>body{font-family:sans-serif;max-width:60rem;margin:2rem auto;padding:0 1rem}\
         code{background:#f3f3f3;padding:0 .2rem}h2{border-top:1px solid #ccc;padding-top:1rem}\
         td{padding:.1rem .6rem;vertical-align:top}</style></head><body>",
    );
    let info = &doc["info"];
    let _ = write!(
        page,
        "<h1>{}</h1><p>{}</p><p>Machine-readable: <a href=\"/api/v1/openapi.json\">/api/v1/openapi.json</a> \
         (OpenAPI {}).</p>",
        escape(info["title"].as_str().unwrap_or_default()),
        escape(info["description"].as_str().unwrap_or_default()),
        escape(doc["openapi"].as_str().unwrap_or_default()),
    );
    for (path, item) in doc["paths"].as_object().into_iter().flatten() {
        for (method, op) in item.as_object().into_iter().flatten() {
            operation(&mut page, doc, path, method, op);
        }
    }
    page.push_str("<h2>Schemas</h2>");
    for (name, schema) in doc["components"]["schemas"].as_object().into_iter().flatten() {
        let _ = write!(page, "<h3 id=\"{0}\">{0}</h3>", escape(name));
        if let Some(values) = schema["enum"].as_array() {
            let values: Vec<String> =
                values.iter().map(|v| format!("<code>{}</code>", escape(&v.to_string()))).collect();
            let _ = write!(page, "<p>One of {}.</p>", values.join(", "));
        }
        let required: Vec<&str> =
            schema["required"].as_array().into_iter().flatten().filter_map(Value::as_str).collect();
        page.push_str("<table>");
        for (field, field_schema) in schema["properties"].as_object().into_iter().flatten() {
            let _ = write!(
                page,
                "<tr><td><code>{}</code>{}</td><td>{}</td><td>{}</td></tr>",
                escape(field),
                if required.contains(&field.as_str()) { "" } else { "?" },
                escape(&schema_name(field_schema)),
                escape(field_schema["description"].as_str().unwrap_or_default()),
            );
        }
        page.push_str("</table>");
    }
    page.push_str("</body></html>");
    page
}

fn operation(page: &mut String, doc: &Value, path: &str, method: &str, op: &Value) {
    let _ = write!(
        page,
        "<h2><code>{} {}</code> {}</h2><p>{}</p>",
        method.to_ascii_uppercase(),
        escape(path),
        escape(op["summary"].as_str().unwrap_or_default()),
        escape(op["description"].as_str().unwrap_or_default()),
    );
    if op.get("security").is_some() {
        page.push_str("<p>Needs a session: <code>Authorization: Bearer &lt;token&gt;</code>.</p>");
    }
    for parameter in op["parameters"].as_array().into_iter().flatten() {
        let _ = write!(
            page,
            "<p>{} <code>{}</code>{}: {}</p>",
            escape(parameter["in"].as_str().unwrap_or_default()),
            escape(parameter["name"].as_str().unwrap_or_default()),
            if parameter["required"] == true { "" } else { " (optional)" },
            escape(parameter["description"].as_str().unwrap_or_default()),
        );
    }
    if let Some(body) = op["requestBody"]["content"]["application/json"]["schema"].as_object() {
        let _ = write!(page, "<p>Body: <code>{}</code></p>", escape(&schema_name(&Value::Object(body.clone()))));
    }
    page.push_str("<table>");
    for (status, response) in op["responses"].as_object().into_iter().flatten() {
        let response = match response["$ref"].as_str() {
            Some(pointer) => doc.pointer(pointer.trim_start_matches('#')).unwrap_or(response),
            None => response,
        };
        let body = response["content"].as_object().and_then(|c| c.iter().next());
        let body =
            body.map(|(media, c)| format!("{} <code>{}</code>", escape(&schema_name(&c["schema"])), escape(media)));
        let _ = write!(
            page,
            "<tr><td>{}</td><td>{}</td><td>{}</td></tr>",
            escape(status),
            escape(response["description"].as_str().unwrap_or_default()),
            body.unwrap_or_default(),
        );
    }
    page.push_str("</table>");
}
