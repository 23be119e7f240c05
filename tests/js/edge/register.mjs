// `node --import ./register.mjs`: installs hooks.mjs for the process (see there).
import { register } from 'node:module';

register('./hooks.mjs', import.meta.url, { data: { root: new URL('../../../', import.meta.url).href } });
