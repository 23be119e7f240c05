//! # dropfix-wasm
//!
//! The browser side of `dropfix-core`, compiled to WebAssembly. It only converts: JS arguments of
//! `DropFix.identify(userId, traits)` become the core's payload, are validated with the core's
//! rules and messages (the ones the verifier would answer with), and come back as the wire body
//! of PROTOCOL.md. Transport, retries and debug hints live in the npm package's JS (`js/`).
//!
//! The browser build has no signing function and never takes a secret: a trait that looks like a
//! DropFix secret key is refused by the core (`secret_not_allowed`) before anything is sent.
//! Signing ([`sign_user`], [`sign_claims`]) exists only with the `node-signing` feature, for the
//! package's Node entry point `dropfix/server`.
//!
//! Errors cross the boundary as a JS `Error` with `code`, `field` and `message` properties, built
//! in one place ([`validation_error`]); the JS layer wraps it in a `DropFixError`.

use dropfix_core::{Identify, ValidationError, Value};
use wasm_bindgen::prelude::*;

/// A JS `Error` carrying the core's machine code and field.
fn validation_error(e: &ValidationError) -> JsValue {
    let err = js_sys::Error::new(&e.message);
    err.set_name("DropFixError");
    let obj: &js_sys::Object = err.as_ref();
    // Setting a property on a fresh Error object cannot fail.
    let _ = js_sys::Reflect::set(obj, &"code".into(), &e.code.into());
    let _ = js_sys::Reflect::set(obj, &"field".into(), &e.field.as_str().into());
    err.into()
}

fn invalid(field: &str, message: &str) -> JsValue {
    validation_error(&ValidationError {
        code: "invalid_type",
        field: field.into(),
        message: [field, " ", message].concat(),
    })
}

/// JS value -> the core's JSON value (duplicate keys and excessive nesting refused by the core).
fn from_js(value: JsValue, field: &str) -> Result<Value, JsValue> {
    if value.is_undefined() || value.is_null() {
        return Ok(Value::Null);
    }
    serde_wasm_bindgen::from_value(value).map_err(|_| {
        invalid(
            field,
            "must be plain JSON data (strings, numbers, booleans, arrays, plain objects)",
        )
    })
}

fn to_js(value: &Value) -> Result<JsValue, JsValue> {
    use serde::Serialize as _;
    let serializer = serde_wasm_bindgen::Serializer::json_compatible();
    value
        .serialize(&serializer)
        .map_err(|_| invalid("traits", "could not be converted to JSON"))
}

/// Validates `DropFix.identify(userId, traits)` for the app id given to `DropFix.init` and
/// returns the request body to POST to `/v1/identify` (a plain object, ready for
/// `JSON.stringify`). Throws a `DropFixError`-shaped `Error` (`code`, `field`, `message`).
#[wasm_bindgen(js_name = buildIdentify)]
pub fn build_identify(app_id: &str, user_id: JsValue, traits: JsValue) -> Result<JsValue, JsValue> {
    let user_id = from_js(user_id, "userId")?;
    let traits = from_js(traits, "traits")?;
    let call = Identify::from_sdk(app_id, &user_id, &traits).map_err(|e| validation_error(&e))?;
    to_js(&call.to_wire())
}

/// The seed form, for a customer's Node backend: `hex(HMAC-SHA256(secret, userId))`.
#[cfg(feature = "node-signing")]
#[wasm_bindgen(js_name = signUser)]
pub fn sign_user(secret: &str, user_id: &str) -> String {
    dropfix_core::seed::sign(&dropfix_core::SecretKey::new(secret), user_id)
}

/// A signed-claims token (HS256) for a customer's Node backend. `claims` may carry `plan`,
/// `mrr`, `email` and `name`; `iat` and `exp` are Unix seconds.
#[cfg(feature = "node-signing")]
#[wasm_bindgen(js_name = signClaims)]
pub fn sign_claims(
    secret: &str,
    sub: &str,
    iat: f64,
    exp: Option<f64>,
    claims: JsValue,
) -> Result<String, JsValue> {
    use dropfix_core::claims::{self, Claims};
    let seconds = |v: f64, field: &str| -> Result<i64, JsValue> {
        if v.is_finite() && v.fract() == 0.0 && v.abs() < 9.0e15 {
            Ok(v as i64)
        } else {
            Err(invalid(field, "must be a whole number of Unix seconds"))
        }
    };
    let traits = from_js(claims, "claims")?;
    let text = |k: &str| -> Result<Option<String>, JsValue> {
        match traits.get(k) {
            None | Some(Value::Null) => Ok(None),
            Some(Value::Str(s)) => Ok(Some(s.clone())),
            Some(_) => Err(invalid(k, "must be a string")),
        }
    };
    let mrr = match traits.get("mrr") {
        None | Some(Value::Null) => None,
        Some(Value::Int(i)) => Some(*i as f64),
        Some(Value::Float(f)) if f.is_finite() && *f >= 0.0 => Some(*f),
        Some(_) => return Err(invalid("mrr", "must be a non-negative number")),
    };
    let claims = Claims {
        sub: sub.into(),
        iat: seconds(iat, "iat")?,
        exp: exp.map(|e| seconds(e, "exp")).transpose()?,
        name: text("name")?,
        email: text("email")?,
        plan: text("plan")?,
        mrr,
    };
    Ok(claims::sign(&dropfix_core::SecretKey::new(secret), &claims))
}
