# The seed page's Python snippet (Step 1), verbatim between the BEGIN/END markers (indented into
# a function body, which Python requires). The wrapper only feeds it a user from USER_ID.
import json
import os
import types


def login(user):
    # BEGIN seed snippet
    import hmac, hashlib, os, time
    signed_at = int(time.time())
    dropfix_hash = hmac.new(
    os.environ['DROPFIX_SECRET_KEY'].encode(),
    user.id.encode(),
    hashlib.sha256
    ).hexdigest()
    # Return both to the frontend
    return { 'dropfix_hash': dropfix_hash, 'dropfix_signed_at': signed_at }
    # END seed snippet


print(json.dumps(login(types.SimpleNamespace(id=os.environ['USER_ID']))))
