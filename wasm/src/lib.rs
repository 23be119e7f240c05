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
//!
//! For wasm32 without the `std` feature (the browser build) the crate is `no_std` and supplies the
//! two things std would: an allocator (dlmalloc, the one std itself uses on wasm32) and a panic
//! handler that traps without formatting a message. Nobody could read that message anyway (wasm32
//! has no stderr), and because the handler ignores it, LTO drops the panic-message formatting code
//! (~3 KB gzipped, see README "Size"). Elsewhere (host builds, tests, the Node build) std is linked.
#![cfg_attr(all(target_arch = "wasm32", not(feature = "std")), no_std)]

extern crate alloc;

use alloc::vec::Vec;
use dropfix_core::{Identify, MAX_DEPTH, ValidationError, Value};
use wasm_bindgen::JsCast;
use wasm_bindgen::prelude::*;

#[cfg(all(target_arch = "wasm32", not(feature = "std")))]
#[global_allocator]
static ALLOCATOR: dlmalloc::GlobalDlmalloc = dlmalloc::GlobalDlmalloc;

/// A panic is a bug in this crate or the core; it traps (a `RuntimeError: unreachable` in JS,
/// which the SDK reports as a failed call) rather than formatting a message nobody can read.
#[cfg(all(target_arch = "wasm32", not(feature = "std")))]
#[panic_handler]
fn panic(_: &core::panic::PanicInfo<'_>) -> ! {
    core::arch::wasm32::unreachable()
}

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

/// `a + sep + b`. Pushing onto one `String` rather than `[a, sep, b].concat()`: the slice join
/// brings its own overflow panic path and message into the page for two three-part strings.
fn join(a: &str, sep: &str, b: &str) -> alloc::string::String {
    let mut s = alloc::string::String::with_capacity(a.len() + sep.len() + b.len());
    s.push_str(a);
    s.push_str(sep);
    s.push_str(b);
    s
}

fn invalid(field: &str, message: &str) -> JsValue {
    validation_error(&ValidationError {
        code: "invalid_type",
        field: field.into(),
        message: join(field, " ", message),
    })
}

/// JS value -> the core's JSON value, walked with `js-sys` rather than through serde: serde's
/// error paths format floats (`Unexpected::Float`), which would add ~15 KB of `core::fmt` float
/// code to every page. `depth` is the nesting level the value will have in the wire body, so the
/// core's limit ([`MAX_DEPTH`]) is enforced here exactly as the verifier enforces it.
fn from_js(value: &JsValue, field: &str, depth: usize) -> Result<Value, JsValue> {
    if value.is_undefined() || value.is_null() {
        return Ok(Value::Null);
    }
    if let Some(b) = value.as_bool() {
        return Ok(Value::Bool(b));
    }
    if let Some(n) = value.as_f64() {
        // A JS safe integer is an integer, as a JSON integer literal would be on the wire. (The
        // cast saturates and maps NaN to 0, so the comparison also rejects NaN and infinities.)
        let safe = n.abs() <= 9_007_199_254_740_991.0 && (n as i64) as f64 == n;
        return Ok(if safe {
            Value::Int(n as i64)
        } else {
            Value::Float(n)
        });
    }
    if let Some(s) = value.as_string() {
        return Ok(Value::Str(s));
    }
    if js_sys::Array::is_array(value) {
        return Ok(Value::Array);
    }
    let plain = value.is_object() && !value.is_function() && {
        let proto = js_sys::Object::get_prototype_of(value);
        proto.is_null() || proto == js_sys::Object::get_prototype_of(&js_sys::Object::new())
    };
    if !plain {
        return Err(invalid(
            field,
            "must be plain JSON data (strings, numbers, booleans, arrays, plain objects)",
        ));
    }
    if depth > MAX_DEPTH {
        return Err(invalid(
            field,
            "is nested too deeply (identify payloads are flat objects)",
        ));
    }
    let object: &js_sys::Object = value.unchecked_ref();
    let mut entries = Vec::new();
    for key in js_sys::Object::keys(object).iter() {
        let name = key.as_string().unwrap_or_default();
        let child = js_sys::Reflect::get(object, &key)?;
        // Like JSON.stringify, a property whose value is undefined is absent.
        if child.is_undefined() {
            continue;
        }
        let path = join(field, ".", &name);
        entries.push((name, from_js(&child, &path, depth + 1)?));
    }
    Ok(Value::Object(entries))
}

/// The core's JSON value -> a plain JS value (for `JSON.stringify`).
fn to_js(value: &Value) -> JsValue {
    match value {
        Value::Null => JsValue::NULL,
        Value::Bool(b) => JsValue::from_bool(*b),
        Value::Int(i) => JsValue::from_f64(*i as f64),
        Value::Float(f) => JsValue::from_f64(*f),
        Value::Str(s) => JsValue::from_str(s),
        Value::Array => js_sys::Array::new().into(),
        Value::Object(entries) => {
            let object = js_sys::Object::new();
            for (k, v) in entries {
                let _ = js_sys::Reflect::set(&object, &JsValue::from_str(k), &to_js(v));
            }
            object.into()
        }
    }
}

/// Validates `DropFix.identify(userId, traits)` for the app id given to `DropFix.init` and
/// returns the request body to POST to `/v1/identify` (a plain object, ready for
/// `JSON.stringify`). Throws a `DropFixError`-shaped `Error` (`code`, `field`, `message`).
#[wasm_bindgen(js_name = buildIdentify)]
pub fn build_identify(app_id: &str, user_id: JsValue, traits: JsValue) -> Result<JsValue, JsValue> {
    let user_id = from_js(&user_id, "userId", 1)?;
    // In the wire body the traits sit one level below the top.
    let traits = from_js(&traits, "traits", 2)?;
    let call = Identify::from_sdk(app_id, &user_id, &traits).map_err(|e| validation_error(&e))?;
    Ok(to_js(&call.to_wire()))
}

/// The seed form, for a customer's Node backend: `hex(HMAC-SHA256(secret, userId))`.
#[cfg(feature = "node-signing")]
#[wasm_bindgen(js_name = signUser)]
pub fn sign_user(secret: &str, user_id: &str) -> alloc::string::String {
    dropfix_core::seed::sign(&dropfix_core::SecretKey::new(secret), user_id)
}

/// The workspace's claims key (`dfck_...`), derived from the secret, for a customer's Node backend
/// that signs tokens with its own JWT library (`jwt.sign(claims, claimsKey, {algorithm: 'HS256'})`).
#[cfg(feature = "node-signing")]
#[wasm_bindgen(js_name = claimsKey)]
pub fn claims_key(secret: &str) -> alloc::string::String {
    dropfix_core::SecretKey::new(secret)
        .expose_claims_key()
        .into()
}

/// A signed-claims token (HS256, keyed with the claims key derived from `secret`) for a customer's
/// Node backend. `claims` may carry any trait, standard (`plan`, `mrr`, `email`, `name`,
/// `signup_date`) or custom, under the identify payload's rules; `iat` and `exp` are Unix seconds.
#[cfg(feature = "node-signing")]
#[wasm_bindgen(js_name = signClaims)]
pub fn sign_claims(
    secret: &str,
    sub: &str,
    iat: f64,
    exp: Option<f64>,
    claims: JsValue,
) -> Result<alloc::string::String, JsValue> {
    let claims = checked_claims(sub, iat, exp, claims)?;
    Ok(dropfix_core::claims::sign(
        &dropfix_core::SecretKey::new(secret),
        &claims,
    ))
}

/// The JSON payload of a public-key token (`sub`, `iat`, `exp`, the traits), under the same rules
/// and in the same shape as [`sign_claims`]'s: the customer's backend signs it with its private
/// key (node:crypto, in `js/keys.mjs`), which never enters the wasm.
#[cfg(feature = "node-signing")]
#[wasm_bindgen(js_name = claimsPayload)]
pub fn claims_payload(
    sub: &str,
    iat: f64,
    exp: f64,
    claims: JsValue,
) -> Result<alloc::string::String, JsValue> {
    let claims = checked_claims(sub, iat, Some(exp), claims)?;
    // serde_json writes UTF-8, so nothing is replaced.
    Ok(
        alloc::string::String::from_utf8_lossy(&dropfix_core::claims::payload_json(&claims))
            .into_owned(),
    )
}

/// The claims of a token for `sub`, the traits validated by the payload's own rules, so a token
/// never signs what the verifier would refuse.
#[cfg(feature = "node-signing")]
fn checked_claims(
    sub: &str,
    iat: f64,
    exp: Option<f64>,
    claims: JsValue,
) -> Result<dropfix_core::claims::Claims, JsValue> {
    use dropfix_core::Traits;
    use dropfix_core::claims::Claims;
    let seconds = |v: f64, field: &str| -> Result<i64, JsValue> {
        if v.abs() < 9.0e15 && (v as i64) as f64 == v {
            Ok(v as i64)
        } else {
            Err(invalid(field, "must be a whole number of Unix seconds"))
        }
    };
    // serde-wasm-bindgen here: the Node build's size does not matter, the browser build has no
    // such path (see `from_js`).
    let traits: Value = if claims.is_undefined() || claims.is_null() {
        Value::Object(Vec::new())
    } else {
        serde_wasm_bindgen::from_value(claims)
            .map_err(|_| invalid("claims", "must be an object"))?
    };
    // The payload's own rules, so a token never signs what the verifier would refuse.
    let traits = Traits::from_value("claims.", &traits).map_err(|e| validation_error(&e))?;
    Ok(Claims::from_traits(
        sub,
        seconds(iat, "iat")?,
        exp.map(|e| seconds(e, "exp")).transpose()?,
        traits,
    ))
}
