// Renders /state.json as phones. The HTML fragments in it were rendered and
// escaped by the server (package tileview); everything else goes in as text.
(function () {
  'use strict';
  var root = document.getElementById('phones');
  var live = document.getElementById('live');
  var shown = -1;
  var polling = null;

  function el(tag, cls, text) {
    var n = document.createElement(tag);
    if (cls) { n.className = cls; }
    if (text !== undefined) { n.textContent = text; }
    return n;
  }

  function fragment(cls, html, empty) {
    var n = el('div', cls);
    if (html) { n.innerHTML = html; } else { n.appendChild(el('p', 'empty', empty)); }
    return n;
  }

  function phone(p) {
    var ph = el('section', 'phone');
    ph.dataset.token = p.token;
    var head = el('div', 'phone-head');
    head.appendChild(el('h2', '', p.name));
    head.appendChild(el('span', 'behaviour b-' + p.behaviour, p.behaviour));
    ph.appendChild(head);
    var c = p.counts;
    ph.appendChild(el('div', 'counts', 'pushes ' + c.total + ' · received ' + c.received +
      ' · rejected ' + c.rejected + ' · today ' + p.pushes_today + (p.https ? '' : '/500')));
    var screen = el('div', 'screen');
    screen.appendChild(el('h3', '', 'toasts (latest first)'));
    screen.appendChild(fragment('toasts', p.toasts_html, 'no toasts yet'));
    screen.appendChild(el('h3', '', 'primary tile' + (p.tile.kind ? ' · ' + p.tile.kind : '')));
    screen.appendChild(fragment('tile', p.tile_html, 'no tile update yet'));
    Object.keys(p.secondary_html || {}).sort().forEach(function (id) {
      screen.appendChild(el('h3', '', 'secondary tile ' + id));
      screen.appendChild(fragment('tile', p.secondary_html[id], ''));
    });
    if (p.rejected && p.rejected.length) {
      screen.appendChild(el('h3', '', 'rejected pushes'));
      var ul = el('ul', 'rejected');
      p.rejected.slice(0, 5).forEach(function (r) { ul.appendChild(el('li', '', r.status + ': ' + r.reason)); });
      screen.appendChild(ul);
    }
    ph.appendChild(screen);
    return ph;
  }

  function render(state) {
    if (state.version === shown) { return; }
    shown = state.version;
    var frag = document.createDocumentFragment();
    var others = window.tilecastDevices || [];
    var none = !state.phones.length && others.every(function (o) { return !(state[o.key] || []).length; });
    if (none) { frag.appendChild(el('p', 'empty', 'No channels yet: POST /channels.')); }
    state.phones.forEach(function (p) { frag.appendChild(phone(p)); });
    // Other transports' devices (assets/windows.js, …) register a renderer
    // for their part of the state.
    others.forEach(function (o) {
      (state[o.key] || []).forEach(function (d) { frag.appendChild(o.render(d)); });
    });
    root.replaceChildren(frag);
  }

  function load() {
    fetch('state.json', { cache: 'no-store' })
      .then(function (r) { return r.json(); })
      .then(render)
      .catch(function () { live.textContent = 'emulator unreachable'; });
  }

  function poll() {
    if (polling === null) {
      polling = setInterval(load, 2000);
      live.textContent = 'polling every 2 s';
    }
  }

  load();
  // ?poll skips SSE: headless browsers with a virtual-time budget wait for
  // open streams forever, and some proxies buffer event streams.
  if (!window.EventSource || /[?&]poll\b/.test(location.search)) { poll(); return; }
  var es = new EventSource('events');
  es.onopen = function () { live.textContent = 'live'; };
  es.addEventListener('state', function (ev) {
    var v = JSON.parse(ev.data).version;
    if (v !== shown) { load(); }
  });
  es.onerror = function () { es.close(); poll(); };
}());
