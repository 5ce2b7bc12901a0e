//! Validation of objects against a CRD's OpenAPI v3 (structural) schema, the way the API
//! server does it: types, bounds, enums, patterns, required and unknown fields, list types,
//! and the `x-kubernetes-validations` CEL rules.
//!
//! Shared by `cutover lint` and the sim so that both reject exactly what a cluster would.

use std::{collections::HashMap, fmt};

use serde_json::{Map, Value};

/// What is wrong with a field, in the API server's vocabulary.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum FieldErrorKind {
    /// A required field is missing.
    Required,
    /// The value breaks a rule.
    Invalid,
    /// The value is not one of the allowed values.
    NotSupported,
    /// The field is not declared in the schema.
    Unknown,
    /// A list or map has too many entries.
    TooMany,
    /// A string is too long.
    TooLong,
    /// A list entry repeats a key.
    Duplicate,
}

/// One problem found in an object.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct FieldError {
    /// Dotted path of the field, e.g. `spec.strategy.canary.steps[2].setWeight`.
    pub path: String,
    /// Category of the problem.
    pub kind: FieldErrorKind,
    /// What is wrong, for a person.
    pub message: String,
}

impl FieldError {
    /// A new error at `path`.
    pub fn new(path: impl Into<String>, kind: FieldErrorKind, message: impl Into<String>) -> Self {
        Self {
            path: path.into(),
            kind,
            message: message.into(),
        }
    }
}

impl fmt::Display for FieldError {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        if self.path.is_empty() {
            f.write_str(&self.message)
        } else {
            write!(f, "{}: {}", self.path, self.message)
        }
    }
}

/// Deepest nesting inspected; deeper values are rejected rather than walked (hostile input).
pub const MAX_DEPTH: usize = 64;

/// An `openAPIV3Schema` with its CEL rules compiled once, for validating many objects.
pub struct CompiledSchema {
    schema: Value,
    cel: kube::core::cel::CompiledSchema,
    patterns: Patterns,
}

/// A schema's string `pattern`s, each compiled once (`None`: it does not compile): every
/// write the sim validates would otherwise build the same automata again.
type Patterns = HashMap<String, Option<regex::Regex>>;

fn collect_patterns(schema: &Value, patterns: &mut Patterns) {
    match schema {
        Value::Object(map) => {
            for (key, value) in map {
                match value {
                    Value::String(p) if key == "pattern" => {
                        patterns
                            .entry(p.clone())
                            .or_insert_with(|| regex::Regex::new(p).ok());
                    }
                    _ => collect_patterns(value, patterns),
                }
            }
        }
        Value::Array(items) => items.iter().for_each(|v| collect_patterns(v, patterns)),
        _ => {}
    }
}

impl CompiledSchema {
    /// Compiles the CEL rules of `schema`.
    pub fn new(schema: Value) -> Self {
        let cel = kube::core::cel::compile_schema(&schema);
        let mut patterns = Patterns::new();
        collect_patterns(&schema, &mut patterns);
        Self {
            schema,
            cel,
            patterns,
        }
    }

    /// The schema as JSON.
    pub fn schema(&self) -> &Value {
        &self.schema
    }

    /// Validates `object`: structure first, then, when the structure is sound, the CEL rules.
    pub fn validate(&self, object: &Value) -> Vec<FieldError> {
        self.validate_update(object, None)
    }

    /// Validates `object` replacing `old`: as [`Self::validate`], and with an old object the
    /// transition rules (those reading `oldSelf`) are evaluated too.
    pub fn validate_update(&self, object: &Value, old: Option<&Value>) -> Vec<FieldError> {
        let mut errors = Vec::new();
        check(&self.patterns, &self.schema, object, "", 0, &mut errors);
        if errors.is_empty() {
            errors.extend(cel_errors(kube::core::cel::validate_compiled(
                &self.cel, object, old,
            )));
        }
        errors
    }
}

/// Validates `object` against `schema` (an `openAPIV3Schema`); compiles the CEL rules on
/// every call, so prefer [`CompiledSchema`] for more than one object.
pub fn validate(schema: &Value, object: &Value) -> Vec<FieldError> {
    CompiledSchema::new(schema.clone()).validate(object)
}

fn cel_errors(result: Result<(), kube::core::cel::ValidationErrors>) -> Vec<FieldError> {
    match result {
        Ok(()) => Vec::new(),
        Err(errors) => errors
            .iter()
            .map(|e| {
                let path = e.field_path.trim_start_matches('.').to_string();
                FieldError::new(path, FieldErrorKind::Invalid, e.message.clone())
            })
            .collect(),
    }
}

fn join(path: &str, field: &str) -> String {
    if path.is_empty() {
        field.to_string()
    } else {
        format!("{path}.{field}")
    }
}

fn render(value: &Value) -> String {
    let text = value.to_string();
    if text.len() > 80 {
        let mut end = 77;
        while !text.is_char_boundary(end) {
            end -= 1;
        }
        format!("{}...", &text[..end])
    } else {
        text
    }
}

fn type_name(value: &Value) -> &'static str {
    match value {
        Value::Null => "null",
        Value::Bool(_) => "boolean",
        Value::Number(n) if n.is_i64() || n.is_u64() => "integer",
        Value::Number(_) => "number",
        Value::String(_) => "string",
        Value::Array(_) => "array",
        Value::Object(_) => "object",
    }
}

fn flag(schema: &Map<String, Value>, key: &str) -> bool {
    schema.get(key).and_then(Value::as_bool).unwrap_or(false)
}

fn check(
    patterns: &Patterns,
    schema: &Value,
    value: &Value,
    path: &str,
    depth: usize,
    errors: &mut Vec<FieldError>,
) {
    let Some(schema) = schema.as_object() else {
        return;
    };
    if depth > MAX_DEPTH {
        errors.push(FieldError::new(
            path,
            FieldErrorKind::Invalid,
            "nesting is too deep",
        ));
        return;
    }
    if value.is_null() {
        if !flag(schema, "nullable") && schema.get("type").is_some() {
            errors.push(type_error(path, value, schema.get("type")));
        }
        return;
    }
    if flag(schema, "x-kubernetes-int-or-string") {
        if !(value.is_string() || type_name(value) == "integer") {
            errors.push(FieldError::new(
                path,
                FieldErrorKind::Invalid,
                format!(
                    "Invalid value: {}: must be an integer or a string",
                    render(value)
                ),
            ));
        }
        return;
    }
    if let Some(expected) = schema.get("type").and_then(Value::as_str) {
        let actual = type_name(value);
        let matches = expected == actual || (expected == "number" && actual == "integer");
        if !matches {
            errors.push(type_error(path, value, schema.get("type")));
            return;
        }
    }
    check_enum(schema, value, path, errors);
    match value {
        Value::Object(map) => check_object(patterns, schema, map, path, depth, errors),
        Value::Array(items) => check_array(patterns, schema, items, path, depth, errors),
        Value::String(s) => check_string(patterns, schema, s, path, errors),
        Value::Number(n) => check_number(schema, n.as_f64().unwrap_or(0.0), value, path, errors),
        _ => {}
    }
}

fn type_error(path: &str, value: &Value, expected: Option<&Value>) -> FieldError {
    let expected = expected.and_then(Value::as_str).unwrap_or("object");
    FieldError::new(
        path,
        FieldErrorKind::Invalid,
        format!(
            "Invalid value: {}: must be of type {expected}",
            render(value)
        ),
    )
}

fn check_enum(
    schema: &Map<String, Value>,
    value: &Value,
    path: &str,
    errors: &mut Vec<FieldError>,
) {
    let Some(allowed) = schema.get("enum").and_then(Value::as_array) else {
        return;
    };
    if !allowed.contains(value) {
        let list: Vec<String> = allowed.iter().map(|v| v.to_string()).collect();
        errors.push(FieldError::new(
            path,
            FieldErrorKind::NotSupported,
            format!(
                "Unsupported value: {}: supported values: {}",
                render(value),
                list.join(", ")
            ),
        ));
    }
}

fn check_object(
    patterns: &Patterns,
    schema: &Map<String, Value>,
    map: &Map<String, Value>,
    path: &str,
    depth: usize,
    errors: &mut Vec<FieldError>,
) {
    if let Some(required) = schema.get("required").and_then(Value::as_array) {
        for field in required.iter().filter_map(Value::as_str) {
            if map.get(field).is_none_or(Value::is_null) {
                errors.push(FieldError::new(
                    join(path, field),
                    FieldErrorKind::Required,
                    "Required value",
                ));
            }
        }
    }
    if let Some(max) = schema.get("maxProperties").and_then(Value::as_u64)
        && map.len() as u64 > max
    {
        errors.push(FieldError::new(
            path,
            FieldErrorKind::TooMany,
            format!("Too many: {}: must have at most {max} items", map.len()),
        ));
    }
    if let Some(min) = schema.get("minProperties").and_then(Value::as_u64)
        && (map.len() as u64) < min
    {
        errors.push(FieldError::new(
            path,
            FieldErrorKind::Invalid,
            format!(
                "Invalid value: {}: should have at least {min} properties",
                map.len()
            ),
        ));
    }
    let properties = schema.get("properties").and_then(Value::as_object);
    let additional = schema.get("additionalProperties");
    let preserve = flag(schema, "x-kubernetes-preserve-unknown-fields");
    for (key, child) in map {
        // The API server handles these root fields itself; CRD schemas need not declare them.
        if path.is_empty() && matches!(key.as_str(), "apiVersion" | "kind" | "metadata") {
            continue;
        }
        let child_path = join(path, key);
        if let Some(child_schema) = properties.and_then(|p| p.get(key)) {
            check(
                patterns,
                child_schema,
                child,
                &child_path,
                depth + 1,
                errors,
            );
        } else if let Some(additional) = additional.filter(|a| a.is_object()) {
            check(patterns, additional, child, &child_path, depth + 1, errors);
        } else if !preserve && additional != Some(&Value::Bool(true)) && properties.is_some() {
            // An object schema that declares no properties at all (e.g. `metadata`) accepts
            // any fields: the API server checks those separately.
            errors.push(FieldError::new(
                child_path,
                FieldErrorKind::Unknown,
                "Unknown field: field not declared in schema",
            ));
        }
    }
}

fn check_array(
    patterns: &Patterns,
    schema: &Map<String, Value>,
    items: &[Value],
    path: &str,
    depth: usize,
    errors: &mut Vec<FieldError>,
) {
    if let Some(max) = schema.get("maxItems").and_then(Value::as_u64)
        && items.len() as u64 > max
    {
        errors.push(FieldError::new(
            path,
            FieldErrorKind::TooMany,
            format!("Too many: {}: must have at most {max} items", items.len()),
        ));
        return;
    }
    if let Some(min) = schema.get("minItems").and_then(Value::as_u64)
        && (items.len() as u64) < min
    {
        errors.push(FieldError::new(
            path,
            FieldErrorKind::Invalid,
            format!(
                "Invalid value: {}: should have at least {min} items",
                items.len()
            ),
        ));
    }
    if let Some(item_schema) = schema.get("items") {
        for (i, item) in items.iter().enumerate() {
            check(
                patterns,
                item_schema,
                item,
                &format!("{path}[{i}]"),
                depth + 1,
                errors,
            );
        }
    }
    check_list_type(schema, items, path, errors);
}

fn check_list_type(
    schema: &Map<String, Value>,
    items: &[Value],
    path: &str,
    errors: &mut Vec<FieldError>,
) {
    let keys: Vec<&str> = match schema.get("x-kubernetes-list-type").and_then(Value::as_str) {
        Some("set") => Vec::new(),
        Some("map") => schema
            .get("x-kubernetes-list-map-keys")
            .and_then(Value::as_array)
            .map(|k| k.iter().filter_map(Value::as_str).collect())
            .unwrap_or_default(),
        _ => return,
    };
    let identity = |item: &Value| -> Value {
        if keys.is_empty() {
            item.clone()
        } else {
            Value::Array(
                keys.iter()
                    .map(|k| item.get(*k).cloned().unwrap_or(Value::Null))
                    .collect(),
            )
        }
    };
    let mut seen: Vec<Value> = Vec::with_capacity(items.len());
    for (i, item) in items.iter().enumerate() {
        let id = identity(item);
        if seen.contains(&id) {
            let shown = if keys.is_empty() {
                render(item)
            } else {
                render(&id)
            };
            errors.push(FieldError::new(
                format!("{path}[{i}]"),
                FieldErrorKind::Duplicate,
                format!("Duplicate value: {shown}"),
            ));
        } else {
            seen.push(id);
        }
    }
}

fn check_string(
    patterns: &Patterns,
    schema: &Map<String, Value>,
    s: &str,
    path: &str,
    errors: &mut Vec<FieldError>,
) {
    let chars = s.chars().count() as u64;
    if let Some(max) = schema.get("maxLength").and_then(Value::as_u64)
        && chars > max
    {
        errors.push(FieldError::new(
            path,
            FieldErrorKind::TooLong,
            format!("Too long: may not be more than {max} bytes"),
        ));
        // A pattern check on a huge string is wasted work; the length already rejects it.
        return;
    }
    if let Some(min) = schema.get("minLength").and_then(Value::as_u64)
        && chars < min
    {
        errors.push(FieldError::new(
            path,
            FieldErrorKind::Invalid,
            format!(
                "Invalid value: {}: should be at least {min} chars long",
                render(&Value::String(s.into()))
            ),
        ));
    }
    if let Some(pattern) = schema.get("pattern").and_then(Value::as_str) {
        // Every `pattern` of the schema was collected when it was compiled.
        match patterns.get(pattern).and_then(Option::as_ref) {
            Some(re) if !re.is_match(s) => errors.push(FieldError::new(
                path,
                FieldErrorKind::Invalid,
                format!(
                    "Invalid value: {}: should match '{pattern}'",
                    render(&Value::String(s.into()))
                ),
            )),
            Some(_) => {}
            None => errors.push(FieldError::new(
                path,
                FieldErrorKind::Invalid,
                "schema pattern does not compile",
            )),
        }
    }
}

fn check_number(
    schema: &Map<String, Value>,
    n: f64,
    value: &Value,
    path: &str,
    errors: &mut Vec<FieldError>,
) {
    if let Some(min) = schema.get("minimum").and_then(Value::as_f64)
        && n < min
    {
        errors.push(FieldError::new(
            path,
            FieldErrorKind::Invalid,
            format!(
                "Invalid value: {}: should be greater than or equal to {min}",
                render(value)
            ),
        ));
    }
    if let Some(max) = schema.get("maximum").and_then(Value::as_f64)
        && n > max
    {
        errors.push(FieldError::new(
            path,
            FieldErrorKind::Invalid,
            format!(
                "Invalid value: {}: should be less than or equal to {max}",
                render(value)
            ),
        ));
    }
    let format = schema.get("format").and_then(Value::as_str);
    if format == Some("int32") && !(i32::MIN as f64..=i32::MAX as f64).contains(&n) {
        errors.push(FieldError::new(
            path,
            FieldErrorKind::Invalid,
            format!("Invalid value: {}: out of range for int32", render(value)),
        ));
    }
}

/// Drops fields the schema does not declare, as the API server does when field validation is
/// not `Strict`; returns the paths it dropped.
pub fn prune(schema: &Value, value: &mut Value) -> Vec<String> {
    let mut dropped = Vec::new();
    prune_at(schema, value, "", 0, &mut dropped);
    dropped
}

fn prune_at(
    schema: &Value,
    value: &mut Value,
    path: &str,
    depth: usize,
    dropped: &mut Vec<String>,
) {
    let Some(schema) = schema.as_object() else {
        return;
    };
    if depth > MAX_DEPTH {
        return;
    }
    match value {
        Value::Object(map) => {
            let properties = schema.get("properties").and_then(Value::as_object);
            let additional = schema.get("additionalProperties").filter(|a| a.is_object());
            let preserve = flag(schema, "x-kubernetes-preserve-unknown-fields");
            let keys: Vec<String> = map.keys().cloned().collect();
            for key in keys {
                if path.is_empty() && matches!(key.as_str(), "apiVersion" | "kind" | "metadata") {
                    continue;
                }
                let child_path = join(path, &key);
                if let Some(child_schema) = properties.and_then(|p| p.get(&key)) {
                    if let Some(child) = map.get_mut(&key) {
                        prune_at(child_schema, child, &child_path, depth + 1, dropped);
                    }
                } else if let Some(additional) = additional {
                    if let Some(child) = map.get_mut(&key) {
                        prune_at(additional, child, &child_path, depth + 1, dropped);
                    }
                } else if !preserve && properties.is_some() {
                    map.remove(&key);
                    dropped.push(child_path);
                }
            }
        }
        Value::Array(items) => {
            if let Some(item_schema) = schema.get("items") {
                for (i, item) in items.iter_mut().enumerate() {
                    prune_at(
                        item_schema,
                        item,
                        &format!("{path}[{i}]"),
                        depth + 1,
                        dropped,
                    );
                }
            }
        }
        _ => {}
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use serde_json::json;

    fn schema() -> Value {
        json!({"type": "object", "properties": {"spec": {"type": "object", "required": ["size"], "properties": {
            "size": {"type": "integer", "minimum": 1, "maximum": 10},
            "name": {"type": "string", "maxLength": 5, "pattern": "^[a-z]+$"},
            "mode": {"type": "string", "enum": ["A", "B"]},
            "tags": {"type": "array", "maxItems": 2, "items": {"type": "string"}, "x-kubernetes-list-type": "set"},
            "free": {"type": "object", "x-kubernetes-preserve-unknown-fields": true},
            "count": {"x-kubernetes-int-or-string": true},
            "opt": {"type": "string", "nullable": true}
        }, "x-kubernetes-validations": [{"rule": "self.size != 7", "message": "seven is not allowed"}]}}})
    }

    fn errors(spec: Value) -> Vec<String> {
        validate(
            &schema(),
            &json!({"apiVersion": "x/v1", "kind": "K", "metadata": {"name": "a"}, "spec": spec}),
        )
        .iter()
        .map(ToString::to_string)
        .collect()
    }

    #[test]
    fn accepts_a_valid_object() {
        assert_eq!(
            errors(
                json!({"size": 3, "name": "abc", "mode": "A", "tags": ["x"], "free": {"any": [1]}, "count": "50%", "opt": null})
            ),
            Vec::<String>::new()
        );
    }

    #[test]
    fn reports_each_kind_of_problem_with_its_path() {
        assert_eq!(errors(json!({})), vec!["spec.size: Required value"]);
        assert_eq!(
            errors(json!({"size": 0})),
            vec!["spec.size: Invalid value: 0: should be greater than or equal to 1"]
        );
        assert_eq!(
            errors(json!({"size": "3"})),
            vec!["spec.size: Invalid value: \"3\": must be of type integer"]
        );
        assert_eq!(
            errors(json!({"size": 1, "name": "toolong"})),
            vec!["spec.name: Too long: may not be more than 5 bytes"]
        );
        assert!(errors(json!({"size": 1, "name": "ABC"}))[0].contains("should match"));
        assert!(errors(json!({"size": 1, "mode": "C"}))[0].contains("Unsupported value: \"C\""));
        assert_eq!(
            errors(json!({"size": 1, "tags": ["a", "a"]})),
            vec!["spec.tags[1]: Duplicate value: \"a\""]
        );
        assert!(errors(json!({"size": 1, "tags": ["a", "b", "c"]}))[0].contains("Too many: 3"));
        assert_eq!(
            errors(json!({"size": 1, "extra": true})),
            vec!["spec.extra: Unknown field: field not declared in schema"]
        );
        assert!(
            errors(json!({"size": 1, "count": true}))[0].contains("must be an integer or a string")
        );
        assert_eq!(
            errors(json!({"size": 7})),
            vec!["spec: seven is not allowed"]
        );
    }

    #[test]
    fn patterns_hold_at_every_depth_and_across_objects() {
        // Patterns under array items and additionalProperties, a property that happens to be
        // named `pattern`, and a pattern that does not compile.
        let compiled = CompiledSchema::new(json!({"type": "object", "properties": {
            "ports": {"type": "array", "items": {"type": "string", "pattern": "^[0-9]+$"}},
            "labels": {"type": "object", "additionalProperties": {"type": "string", "pattern": "^v"}},
            "pattern": {"type": "string", "pattern": "^p"},
            "broken": {"type": "string", "pattern": "(unclosed"}
        }}));
        let errs = |v: Value| -> Vec<String> {
            compiled
                .validate(&v)
                .iter()
                .map(ToString::to_string)
                .collect()
        };
        for _ in 0..2 {
            assert_eq!(
                errs(json!({"ports": ["80", "443"], "labels": {"a": "v1"}, "pattern": "pp"})),
                Vec::<String>::new()
            );
            assert_eq!(
                errs(json!({"ports": ["80", "http"], "labels": {"a": "x"}, "pattern": "q"})),
                vec![
                    "labels.a: Invalid value: \"x\": should match '^v'",
                    "pattern: Invalid value: \"q\": should match '^p'",
                    "ports[1]: Invalid value: \"http\": should match '^[0-9]+$'",
                ]
            );
        }
        assert_eq!(
            errs(json!({"broken": "x"})),
            vec!["broken: schema pattern does not compile"]
        );
    }

    #[test]
    fn deep_nesting_is_rejected_not_walked() {
        let mut deep = json!(1);
        for _ in 0..100 {
            deep = json!({"a": deep});
        }
        let errs = validate(
            &json!({"type": "object", "x-kubernetes-preserve-unknown-fields": true, "additionalProperties": {"type": "object", "additionalProperties": {}}}),
            &deep,
        );
        assert!(errs.len() <= 1);
    }

    #[test]
    fn prune_drops_undeclared_fields_only() {
        let mut v = json!({"apiVersion": "x/v1", "kind": "K", "metadata": {"name": "a"}, "spec": {"size": 1, "extra": 2, "free": {"kept": 3}}});
        assert_eq!(prune(&schema(), &mut v), vec!["spec.extra".to_string()]);
        assert_eq!(v["spec"], json!({"size": 1, "free": {"kept": 3}}));
    }
}
