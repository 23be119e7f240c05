// DropFix loader stub: paste this file inline in a script element in <head>, followed by an
// async script element whose src is dropfix.global.js (see the README). It defines a
// window.DropFix whose calls are queued (identify() still returns a Promise) and replayed in
// order by dropfix.global.js once it has loaded. (No closing script tag may appear in this
// file: it is meant to be inlined.)
// Outside a browser (an SSR import of dropfix/loader) it does nothing.
(function (w) {
  if (w.DropFix) return;
  var q = [];
  function queue(method, withPromise) {
    return function () {
      var args = Array.prototype.slice.call(arguments);
      if (!withPromise) {
        q.push([method, args]);
        return undefined;
      }
      return new Promise(function (resolve, reject) {
        q.push([method, args, resolve, reject]);
      });
    };
  }
  w.DropFix = { _q: q, init: queue('init', false), identify: queue('identify', true), reset: queue('reset', false) };
})(typeof window === "undefined" ? { DropFix: 1 } : window);
