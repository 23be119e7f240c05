// An ESM app as a consumer writes it (`import ... from 'dropfix'`, resolved through the package's
// exports). Every `@ts-expect-error` line is a call the verifier would refuse or a name that is
// undefined at run time: tsc fails if one of them stops being an error.
import { DropFix, DropFixError, type DropFixErrorCode, type Traits } from 'dropfix';

DropFix.init({ appId: 'app_x', endpoint: 'https://verify.example.com', timeoutMs: 5000, debug: true });

// Accepted: a token alone, the seed form with either alias, custom traits.
void DropFix.identify('42', { plan: 'pro', mrr: 49, signature: 'header.payload.mac' });
void DropFix.identify(42, { hash: 'ab'.repeat(32), signedAt: 1732406400, team: 'core' });
void DropFix.identify('42', { signature: 'ab'.repeat(32), signed_at: 1732406400 });
void DropFix.identify('42');
const traits: Traits = { name: 'Ada', hash: 'ab'.repeat(32), signedAt: 1 };
void traits;

// @ts-expect-error hash and signature are aliases: not both
void DropFix.identify('42', { hash: 'a'.repeat(64), signature: 'b'.repeat(64), signedAt: 1 });
// @ts-expect-error signedAt and signed_at are aliases: not both
void DropFix.identify('42', { hash: 'a'.repeat(64), signedAt: 1, signed_at: 2 });
// @ts-expect-error mrr is a number
void DropFix.identify('42', { mrr: '49' });
// @ts-expect-error the timeout is a number of milliseconds
DropFix.init({ appId: 'app_x', timeoutMs: '10s' });

// An ESM app has no global DropFix: only `dropfix/global` declares one.
// @ts-expect-error window.DropFix is undefined at run time in an ESM app
window.DropFix.reset();

async function login(userId: string, token: string): Promise<string> {
  try {
    const r = await DropFix.identify(userId, { signature: token });
    return r.method ?? 'unverified';
  } catch (e) {
    if (!(e instanceof DropFixError)) throw e;
    // The codes are a union: a typo is a compile error, not a branch that never runs.
    // @ts-expect-error no such code
    if (e.code === 'signature_mismach') return 'typo';
    switch (e.code) {
      case 'timeout':
      case 'network_error':
        return 'retry later';
      case 'reset':
        return 'logged out meanwhile';
      case 'origin_not_allowed':
      case 'csp_blocked':
      case 'sdk_load_failed':
      case 'not_in_browser':
        return 'page setup';
      default:
        return e.code;
    }
  }
}
void login;

// init() throws (not a rejection) when the app id is unusable: the same error type and codes.
function setUp(appId: string): string {
  try {
    DropFix.init({ appId });
    return 'ready';
  } catch (e) {
    if (e instanceof DropFixError && (e.code === 'invalid_config' || e.code === 'secret_not_allowed')) return e.message;
    throw e;
  }
}
void setUp;
// @ts-expect-error appId is required
DropFix.init({ endpoint: 'https://verify.example.com' });

const fromProxy: DropFixErrorCode = 'http_502';
// @ts-expect-error not a code
const unknown: DropFixErrorCode = 'timed_out';
void fromProxy;
void unknown;
