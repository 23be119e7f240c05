// A page that uses the script-tag build (and the loader stub): it opts in to the global with a
// reference to `dropfix/global`, and gets the same checks as the ESM entry.
/// <reference types="dropfix/global" />

window.DropFix.init({ appId: 'app_x', endpoint: 'https://verify.example.com' });
DropFix.identify('42', { signature: 'header.payload.mac' }).then(
  (r) => r.verified,
  (e: unknown) => {
    const DropFixError = window.DropFix.DropFixError;
    return DropFixError !== undefined && e instanceof DropFixError && e.code === 'signature_expired';
  },
);
window.DropFix.reset();

// @ts-expect-error hash and signature are aliases: not both
void window.DropFix.identify('42', { hash: 'a'.repeat(64), signature: 'b'.repeat(64) });
