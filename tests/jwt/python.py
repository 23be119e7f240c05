# Issues a signed-claims token the way a Python backend would, with PyJWT.
import os
import time

import jwt

token = jwt.encode(
    {"sub": os.environ["SUB"], "iat": int(time.time()), "exp": int(time.time()) + 300,
     "plan": os.environ["PLAN"], "mrr": float(os.environ["MRR"]),
     "signup_date": os.environ["SIGNUP_DATE"], "team": os.environ["TEAM"]},
    # The workspace's claims key (dfck_...), not the secret: tokens and seed hashes use separate keys.
    os.environ["DROPFIX_CLAIMS_KEY"],
    algorithm="HS256",
)
print(token)
