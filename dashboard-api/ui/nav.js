// Navigation: go() to a hash route. The router (app.js) registers itself with setRouter() at
// boot, so the modules that navigate need not import it.

let router = null;

/** Registers the function that renders the current hash (called once, at boot). */
export function setRouter(fn) {
  router = fn;
}

export function go(hash) {
  if (location.hash === hash) router();
  else location.hash = hash;
}
