# Issues a signed-claims token the way a Python backend would, with PyJWT.
import os
import time

import jwt

token = jwt.encode(
    {"sub": os.environ["SUB"], "iat": int(time.time()), "exp": int(time.time()) + 300,
     "plan": os.environ["PLAN"], "mrr": float(os.environ["MRR"])},
    os.environ["DROPFIX_SECRET_KEY"],
    algorithm="HS256",
)
print(token)
