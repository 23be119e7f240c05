// DropFix loader stub: paste inline in <head> before the async SDK script tag. It defines a
// window.DropFix whose calls are queued (identify() still returns a Promise) and replayed in
// order by dropfix.global.js once it has loaded.
//   <script>/* this file */</script>
//   <script async src="https://cdn.example.com/dropfix/dropfix.global.js"></script>
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
})(window);
