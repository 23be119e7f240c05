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


def b64url(data):
    return base64.urlsafe_b64encode(data).rstrip(b"=").decode()


def jws(secret, header, claims):
    signing_input = b64url(json.dumps(header, separators=(",", ":")).encode()) + "." + \
        b64url(json.dumps(claims, separators=(",", ":")).encode())
    tag = hmac.new(secret.encode(), signing_input.encode(), hashlib.sha256).digest()
    return signing_input + "." + b64url(tag)


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
             verified(name="Ada", email="ada@example.com", plan="pro", mrr=49.0)),
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
        case("signed claims: alg RS256", {"user_id": "42", "signature": jws(SECRET, {"alg": "RS256"}, good)},
             rejected("signature_malformed")),
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
    ]
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
        "decision_cases": decision_cases(),
    }
    out = pathlib.Path(__file__).with_name("seed.json")
    out.write_text(json.dumps(doc, indent=1, ensure_ascii=False) + "\n")
    print(f"wrote {out} ({len(doc['decision_cases'])} decision cases)")


if __name__ == "__main__":
    main()
