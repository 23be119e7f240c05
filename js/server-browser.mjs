// `dropfix/server` as a browser bundle resolves it (the `browser` export condition, after the edge
// ones): signing takes the workspace secret, which must never reach a page. Rather than signing
// with a secret shipped to every visitor, each function throws, saying where signing belongs.
// Importing stays harmless (shared code may import it and sign only on the server).
const MESSAGE =
  'DropFix: dropfix/server was bundled for the browser. It signs with your secret key ' +
  '(DROPFIX_SECRET_KEY), which must stay on your server: sign in a route handler, a server ' +
  'action or your backend, and pass only the signature to DropFix.identify().';

function refuse() {
  throw new Error(MESSAGE);
}

export const signUser = refuse;
export const claimsKey = refuse;
export const signClaims = refuse;
export const generateKeyPair = refuse;
export const jwkThumbprint = refuse;
