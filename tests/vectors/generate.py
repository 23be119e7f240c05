#!/usr/bin/env python3
"""Writes tests/vectors/seed.json, the one vector file every language's tests read.

The expected signatures and tokens are computed here with Python's standard `hmac`, `hashlib`
and `base64` modules: an implementation independent of the Rust core under test. The file is
committed; rerun this only to add cases (`python3 tests/vectors/generate.py`), and review the diff.
"""
import base64, hashlib, hmac, json, pathlib

NOW = 1732406400  # 2024-11-24T00:00:00Z, the `now` every decision case is evaluated at
SECRET = "dfsk_3f1c9a7be25d4c0e8a6b1d2f9e7c5a3b1d0f2e4c6a8b9d7f5e3c1a2b4d6f8e0a"
OLD_SECRET = "dfsk_0000000000000000000000000000000000000000000000000000000000000001"
OTHER_SECRET = "dfsk_ffffffffffffffffffffffffffffffffffffffffffffffffffffffffffffffff"


def seed(secret, user_id):
    return hmac.new(secret.encode(), user_id.encode(), hashlib.sha256).hexdigest()


# Signed-claims tokens are keyed with the workspace's claims key, never the secret itself (domain
# separation: a seed-form hash must never be a valid token). HKDF-SHA256 (RFC 5869) with L = 32 is
# one Expand block, written out here with plain `hmac` so it is independent of the Rust `hkdf` crate.
CLAIMS_KEY_SALT = b"dropfix signed-claims"
CLAIMS_KEY_INFO = b"dropfix/claims-key/v1"


def claims_key(secret):
    prk = hmac.new(CLAIMS_KEY_SALT, secret.encode(), hashlib.sha256).digest()
    okm = hmac.new(prk, CLAIMS_KEY_INFO + b"\x01", hashlib.sha256).digest()
    return "dfck_" + okm.hex()


def b64url(data):
    return base64.urlsafe_b64encode(data).rstrip(b"=").decode()


def jws_raw(key, header, claims):
    """A token whose HMAC key is the UTF-8 bytes of `key`, used as given."""
    signing_input = b64url(json.dumps(header, separators=(",", ":")).encode()) + "." + \
        b64url(json.dumps(claims, separators=(",", ":")).encode())
    tag = hmac.new(key.encode(), signing_input.encode(), hashlib.sha256).digest()
    return signing_input + "." + b64url(tag)


def jws(secret, header, claims):
    """A token as a correct backend issues it: keyed with the claims key of `secret`."""
    return jws_raw(claims_key(secret), header, claims)


USER_IDS = [
    ("ascii", "42"),
    ("ulid", "user_01H8XYZABCDEF"),
    ("unicode", "José-Ñandú-用户-🙂"),
    ("spaces", " id with  spaces "),
    ("email_like", "ada@example.com"),
    ("long", "u" * 255),
    ("numeric_string", "9007199254740993"),
]

# RFC 4231 HMAC-SHA256 test cases 1-7 (key, data, MAC; case 5 is truncated to 128 bits).
RFC4231 = [
    ("0b" * 20, b"Hi There".hex()),
    (b"Jefe".hex(), b"what do ya want for nothing?".hex()),
    ("aa" * 20, "dd" * 50),
    (bytes(range(1, 26)).hex(), "cd" * 50),
    ("0c" * 20, b"Test With Truncation".hex()),
    ("aa" * 131, b"Test Using Larger Than Block-Size Key - Hash Key First".hex()),
    ("aa" * 131, b"This is a test using a larger than block-size key and a larger than block-size data. The key needs to be hashed before being used by the HMAC algorithm.".hex()),
]


def rfc_cases():
    out = []
    for i, (key, data) in enumerate(RFC4231, start=1):
        mac = hmac.new(bytes.fromhex(key), bytes.fromhex(data), hashlib.sha256).hexdigest()
        out.append({"name": f"rfc4231 case {i}", "key_hex": key, "data_hex": data,
                    "mac_hex": mac[:32] if i == 5 else mac})
    return out


def case(name, body, expect, secrets=(SECRET,), strict="off", require_signed_claims=False):
    full = {"app_id": "app_vectors", **body}
    return {"name": name, "secrets": list(secrets), "strict": strict,
            "require_signed_claims": require_signed_claims, "now": NOW,
            "request": full, "expect": expect}


def verified(method="seed_hmac", key_index=0, **trusted):
    return {"outcome": "verified", "method": method, "key_index": key_index, "trusted": trusted}


def rejected(code):
    return {"outcome": "rejected", "code": code}


def invalid(code, field):
    return {"outcome": "invalid", "code": code, "field": field}


def decision_cases():
    sig = seed(SECRET, "42")
    traits = {"name": "Ada", "email": "ada@example.com", "plan": "pro", "mrr": 49.0,
              "signup_date": "2024-03-01"}
    c = [
        case("valid seed signature", {"user_id": "42", "traits": traits, "signature": sig, "signed_at": NOW},
             verified(name="Ada", email="ada@example.com", plan="pro", mrr=49.0, signup_date="2024-03-01")),
        case("uppercase hex accepted", {"user_id": "42", "signature": sig.upper(), "signed_at": NOW}, verified()),
        case("hash and signedAt aliases", {"user_id": "42", "hash": sig, "signedAt": NOW}, verified()),
        case("numeric user id is its decimal string", {"user_id": 42, "signature": sig, "signed_at": NOW}, verified()),
        case("signed a number-formatted id", {"user_id": "42", "signature": seed(SECRET, "42.0"), "signed_at": NOW},
             rejected("signature_mismatch")),
        case("no signature, not strict", {"user_id": "42", "traits": traits}, {"outcome": "unverified"}),
        case("no signature, strict", {"user_id": "42"}, rejected("signature_required"), strict="on"),
        case("no signature, strict report-only", {"user_id": "42"},
             {"outcome": "unverified", "would_reject": "signature_required"}, strict="report_only"),
        case("signature of another user", {"user_id": "43", "signature": sig, "signed_at": NOW},
             rejected("signature_mismatch")),
        case("signed with another secret", {"user_id": "42", "signature": seed(OTHER_SECRET, "42"), "signed_at": NOW},
             rejected("signature_mismatch")),
        case("secret with a trailing newline", {"user_id": "42", "signature": seed(SECRET + "\n", "42"), "signed_at": NOW},
             rejected("signature_mismatch")),
        case("signed the email instead of the id", {"user_id": "42", "signature": seed(SECRET, "ada@example.com"), "signed_at": NOW},
             rejected("signature_mismatch")),
        case("exactly 300 s old", {"user_id": "42", "signature": sig, "signed_at": NOW - 300}, verified()),
        case("301 s old", {"user_id": "42", "signature": sig, "signed_at": NOW - 301}, rejected("signature_expired")),
        case("60 s in the future", {"user_id": "42", "signature": sig, "signed_at": NOW + 60}, verified()),
        case("61 s in the future", {"user_id": "42", "signature": sig, "signed_at": NOW + 61}, rejected("signed_at_in_future")),
        case("signature without signedAt", {"user_id": "42", "signature": sig}, rejected("signed_at_missing")),
        case("signedAt in milliseconds", {"user_id": "42", "signature": sig, "signed_at": NOW * 1000},
             rejected("signed_at_not_seconds")),
        case("63 hex characters", {"user_id": "42", "signature": sig[:63], "signed_at": NOW}, rejected("signature_malformed")),
        case("base64 digest instead of hex",
             {"user_id": "42", "signature": base64.b64encode(bytes.fromhex(sig)).decode(), "signed_at": NOW},
             rejected("signature_malformed")),
        case("wrong signature checked before freshness", {"user_id": "43", "signature": sig, "signed_at": NOW - 999},
             rejected("signature_mismatch")),
        case("rotation: old secret still verifies", {"user_id": "42", "signature": seed(OLD_SECRET, "42"), "signed_at": NOW},
             verified(key_index=1), secrets=(SECRET, OLD_SECRET)),
        case("rotation: new secret verifies", {"user_id": "42", "signature": sig, "signed_at": NOW},
             verified(key_index=0), secrets=(SECRET, OLD_SECRET)),
        case("seed form when signed claims are required", {"user_id": "42", "signature": sig, "signed_at": NOW},
             rejected("signed_claims_required"), require_signed_claims=True),
        case("unsigned when signed claims are required", {"user_id": "42"},
             rejected("signed_claims_required"), require_signed_claims=True),
        case("negative mrr", {"user_id": "42", "traits": {"mrr": -1}}, invalid("invalid_value", "traits.mrr")),
        case("plan not a string", {"user_id": "42", "traits": {"plan": 3}}, invalid("invalid_type", "traits.plan")),
        case("empty user id", {"user_id": ""}, invalid("empty_value", "user_id")),
        case("user id too long", {"user_id": "u" * 256}, invalid("too_long", "user_id")),
        case("client tries to mark itself verified", {"user_id": "42", "traits": {"verified": True}},
             invalid("reserved_trait", "traits.verified")),
        case("secret sent from the browser", {"user_id": "42", "signature": SECRET}, invalid("secret_not_allowed", "signature")),
        # Control characters: refused everywhere (NUL cannot be stored by every backend), except
        # tab and line breaks in free text.
        case("NUL in a trait", {"user_id": "42", "traits": {"name": "Ada\u0000"}}, invalid("invalid_characters", "traits.name")),
        case("NUL in a custom trait", {"user_id": "42", "traits": {"team": "a\u0000b"}},
             invalid("invalid_characters", "traits.team")),
        case("escape character in a trait", {"user_id": "42", "traits": {"plan": "pro\u001b[31m"}},
             invalid("invalid_characters", "traits.plan")),
        case("NUL in the user id", {"user_id": "4\u00002"}, invalid("invalid_characters", "user_id")),
        case("tab and line breaks in free text", {"user_id": "42", "traits": {"name": "Ada\tL.\r\nLovelace"}},
             {"outcome": "unverified"}),
    ]
    for label, uid in USER_IDS:
        c.append(case(f"valid seed signature, {label} id",
                      {"user_id": uid, "signature": seed(SECRET, uid), "signed_at": NOW}, verified()))

    hs = {"alg": "HS256", "typ": "JWT"}
    good = {"sub": "42", "iat": NOW, "plan": "pro", "mrr": 49}
    tok = jws(SECRET, hs, good)
    head, payload, tag = tok.split(".")
    c += [
        case("signed claims", {"user_id": "42", "traits": {"plan": "pro", "mrr": 49}, "signature": tok},
             verified(method="signed_claims", plan="pro", mrr=49.0)),
        case("signed claims: browser omits traits, token values are trusted", {"user_id": "42", "signature": tok},
             verified(method="signed_claims", plan="pro", mrr=49.0)),
        case("signed claims: tampered plan in browser", {"user_id": "42", "traits": {"plan": "enterprise"}, "signature": tok},
             rejected("claims_mismatch")),
        case("signed claims: tampered mrr in browser", {"user_id": "42", "traits": {"mrr": 999}, "signature": tok},
             rejected("claims_mismatch")),
        case("signed claims: sub is another user", {"user_id": "43", "signature": tok}, rejected("claims_mismatch")),
        case("signed claims: tampered payload",
             {"user_id": "42", "signature": head + "." + b64url(json.dumps({**good, "plan": "enterprise"}).encode()) + "." + tag},
             rejected("signature_mismatch")),
        case("signed claims: wrong key", {"user_id": "42", "signature": jws(OTHER_SECRET, hs, good)}, rejected("signature_mismatch")),
        case("signed claims: alg none",
             {"user_id": "42", "signature": b64url(b'{"alg":"none"}') + "." + payload + "." + tag}, rejected("signature_malformed")),
        # A public-key alg goes to the workspace's token issuers, never to the claims key: an HS256
        # MAC relabelled RS256 meets a workspace that trusts no issuer.
        case("signed claims: alg RS256", {"user_id": "42", "signature": jws(SECRET, {"alg": "RS256"}, good)},
             rejected("unknown_issuer")),
        case("signed claims: crit header", {"user_id": "42", "signature": jws(SECRET, {"alg": "HS256", "crit": ["x"]}, good)},
             rejected("signature_malformed")),
        case("signed claims: iat 301 s old", {"user_id": "42", "signature": jws(SECRET, hs, {**good, "iat": NOW - 301})},
             rejected("signature_expired")),
        case("signed claims: iat in the future", {"user_id": "42", "signature": jws(SECRET, hs, {**good, "iat": NOW + 61})},
             rejected("signed_at_in_future")),
        case("signed claims: exp passed", {"user_id": "42", "signature": jws(SECRET, hs, {**good, "exp": NOW - 1})},
             rejected("signature_expired")),
        case("signed claims: padded base64", {"user_id": "42", "signature": tok + "="}, rejected("signature_malformed")),
        case("signed claims required and given", {"user_id": "42", "signature": tok},
             verified(method="signed_claims", plan="pro", mrr=49.0), require_signed_claims=True),
        case("signed claims: token signed with the raw secret instead of the claims key",
             {"user_id": "42", "signature": jws_raw(SECRET, hs, good)}, rejected("signature_mismatch")),
        case("signed claims: rotation, old secret's claims key still verifies",
             {"user_id": "42", "signature": jws(OLD_SECRET, hs, good)},
             verified(method="signed_claims", key_index=1, plan="pro", mrr=49.0), secrets=(SECRET, OLD_SECRET)),
    ]
    # Cross-form forgery (both directions) must fail: a seed-form hash of a user id equal to a
    # token's signing input, appended as the token's signature, and a token's parts as a seed call.
    forged_input = b64url(json.dumps({"alg": "HS256"}, separators=(",", ":")).encode()) + "." + \
        b64url(json.dumps({"sub": "1001", "iat": NOW, "plan": "enterprise", "mrr": 99999},
                          separators=(",", ":")).encode())
    forged = forged_input + "." + b64url(bytes.fromhex(seed(SECRET, forged_input)))
    c += [
        case("cross-form: seed hash of a signing input as a token", {"user_id": "1001", "signature": forged},
             rejected("signature_mismatch"), strict="on", require_signed_claims=True),
        case("cross-form: seed hash of a signing input as a token (not strict)", {"user_id": "1001", "signature": forged},
             rejected("signature_mismatch")),
        case("cross-form: a token's signing input and MAC as a seed call",
             {"user_id": head + "." + payload,
              "signature": base64.urlsafe_b64decode(tag + "=" * (-len(tag) % 4)).hex(), "signed_at": NOW},
             rejected("signature_mismatch")),
    ]
    # Signed claims covering every trait (signup_date and custom ones too).
    full = {"sub": "42", "iat": NOW, "name": "Ada", "email": "ada@example.com", "plan": "pro", "mrr": 49,
            "signup_date": "2024-03-01", "team_size": 5, "beta": True}
    ftok = jws(SECRET, hs, full)
    all_traits = {"name": "Ada", "email": "ada@example.com", "plan": "pro", "mrr": 49,
                  "signup_date": "2024-03-01", "team_size": 5, "beta": True}
    c += [
        case("signed claims covering every trait", {"user_id": "42", "traits": all_traits, "signature": ftok},
             verified(method="signed_claims", name="Ada", email="ada@example.com", plan="pro", mrr=49.0,
                      signup_date="2024-03-01", custom={"team_size": 5, "beta": True})),
        case("signed claims: tampered signup_date in browser",
             {"user_id": "42", "traits": {**all_traits, "signup_date": "2020-01-01"}, "signature": ftok},
             rejected("claims_mismatch")),
        case("signed claims: tampered custom trait in browser",
             {"user_id": "42", "traits": {**all_traits, "team_size": 500}, "signature": ftok},
             rejected("claims_mismatch")),
        case("signed claims: custom trait 5.0 in the token equals 5 from the browser",
             {"user_id": "42", "traits": {"team_size": 5},
              "signature": jws(SECRET, hs, {"sub": "42", "iat": NOW, "team_size": 5.0})},
             verified(method="signed_claims", custom={"team_size": 5.0})),
        case("signed claims: reserved trait name in the token",
             {"user_id": "42", "signature": jws(SECRET, hs, {"sub": "42", "iat": NOW, "Verified_At": 1})},
             rejected("signature_malformed")),
        case("signed claims: NUL in a token's trait",
             {"user_id": "42", "signature": jws(SECRET, hs, {"sub": "42", "iat": NOW, "name": "Ada\u0000"})},
             rejected("signature_malformed")),
        case("signed claims: NUL in a token's custom trait",
             {"user_id": "42", "signature": jws(SECRET, hs, {"sub": "42", "iat": NOW, "team": "a\u0000"})},
             rejected("signature_malformed")),
        case("signed claims: negative mrr in the token",
             {"user_id": "42", "signature": jws(SECRET, hs, {"sub": "42", "iat": NOW, "mrr": -1})},
             rejected("signature_malformed")),
    ]
    for name in ["verified_at", "key_id", "method", "first_seen", "last_seen", "unverified_claims",
                 "User_Id", "app_id", "SIGNATURE", "Hash", "Signed_At", "SignedAt", "dropfix_x",
                 "signature_v2", "sub", "exp", "nbf", "Iat", "aud", "iss", "jti"]:
        # (`signature`, `hash`, `signedAt`, `signed_at` themselves are the SDK's options when
        # passed in its traits argument, so these cases use other spellings of them.)
        c.append(case(f"reserved custom trait {name!r}", {"user_id": "42", "traits": {name: 1}},
                      invalid("reserved_trait", "traits." + name)))
    return c


def main():
    doc = {
        "description": "Shared DropFix verification vectors. Generated by tests/vectors/generate.py "
                       "with Python's hmac/hashlib (independent of the Rust core). Read by the Rust, "
                       "JS, Python and Ruby tests; never copy these per language.",
        "secret": SECRET,
        "now": NOW,
        "rfc4231": rfc_cases(),
        "hmac_cases": [{"name": label, "secret": s, "user_id": uid, "signature": seed(s, uid)}
                       for label, uid in USER_IDS
                       for s in (SECRET, "Jefe", "sécret with ünïcode")],
        "claims_keys": [{"secret": s, "claims_key": claims_key(s)}
                        for s in (SECRET, OLD_SECRET, "Jefe", "sécret with ünïcode", "")],
        "claims_token": {"secret": SECRET, "claims_key": claims_key(SECRET), "now": NOW,
                         "claims": {"sub": "42", "iat": NOW, "plan": "pro", "mrr": 49},
                         "token": jws(SECRET, {"alg": "HS256", "typ": "JWT"},
                                      {"sub": "42", "iat": NOW, "plan": "pro", "mrr": 49})},
        "decision_cases": decision_cases(),
    }
    out = pathlib.Path(__file__).with_name("seed.json")
    out.write_text(json.dumps(doc, indent=1, ensure_ascii=False) + "\n")
    print(f"wrote {out} ({len(doc['decision_cases'])} decision cases)")


if __name__ == "__main__":
    main()
