// Types of the script-tag build (`dist/dropfix.global.js`, with or without the loader stub): the
// global `DropFix` exists only on such pages, so only they declare it, with
// `/// <reference types="dropfix/global" />` or `"types": ["dropfix/global"]` in tsconfig.json.
import type { DropFixApi, DropFixError } from './index.js';

declare global {
  /** The SDK of the script-tag build (a queueing stub until it has loaded, with the loader). */
  var DropFix: DropFixApi & {
    /** Set once the SDK has loaded (absent on the loader stub). */
    DropFixError?: typeof DropFixError;
  };
}

export {};
