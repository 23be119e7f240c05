# Issues a public-key token the way a Python backend would, with PyJWT and cryptography: the
# private key from KEY_FILE (PKCS#8 PEM), the algorithm ALG, and optional KID, ISS, AUD
# (comma-separated: several make an array), EXP_IN / NBF_IN (seconds from now).
import os
import time

import jwt

env = os.environ
now = int(time.time())
payload = {"sub": env["SUB"], "iat": now, "exp": now + int(env.get("EXP_IN") or 300),
           "plan": env["PLAN"], "mrr": float(env["MRR"]), "signup_date": env["SIGNUP_DATE"],
           "team": env["TEAM"]}
if env.get("NBF_IN"):
    payload["nbf"] = now + int(env["NBF_IN"])
if env.get("ISS"):
    payload["iss"] = env["ISS"]
if env.get("AUD"):
    aud = env["AUD"].split(",")
    payload["aud"] = aud if len(aud) > 1 else aud[0]
with open(env["KEY_FILE"]) as f:
    private_key = f.read()
headers = {"kid": env["KID"]} if env.get("KID") else None
print(jwt.encode(payload, private_key, algorithm=env["ALG"], headers=headers))
