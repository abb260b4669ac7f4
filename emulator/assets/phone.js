// Renders /state.json as phones. The HTML fragments in it were rendered and
// escaped by the server (package tileview); everything else goes in as text.
//
// An update changes only what changed: the new state is rendered off the
// page, then the page's own nodes are patched to match it (morph), so an
// unchanged phone keeps its nodes and a scrolled toast list keeps its
// scroll position.
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

  // counts renders "pushes N = a + b + …": every outcome that happened, and
  // those in always even at 0, so the parts add up to the total.
  function counts(total, parts, always) {
    var line = el('div', 'counts');
    line.dataset.total = total;
    line.appendChild(el('span', 'total', 'pushes ' + total));
    var first = true;
    parts.forEach(function (p) {
      if (!p[1] && always.indexOf(p[0]) < 0) { return; }
      line.appendChild(document.createTextNode(first ? ' = ' : ' + '));
      first = false;
      var s = el('span', 'part', p[0] + ' ' + p[1]);
      s.dataset.n = p[1];
      line.appendChild(s);
    });
    return line;
  }
  window.tilecastCounts = counts;

  function phone(p) {
    var ph = el('section', 'phone');
    ph.dataset.token = p.token;
    var head = el('div', 'phone-head');
    head.appendChild(el('h2', '', p.name));
    head.appendChild(el('span', 'behaviour b-' + p.behaviour, p.behaviour));
    ph.appendChild(head);
    var c = p.counts;
    ph.appendChild(counts(c.total, [['received', c.received], ['queue full', c.queuefull],
      ['suppressed', c.suppressed], ['expired', c.expired], ['inactive', c.inactive],
      ['over the daily cap', c.throttled], ['unavailable', c.unavailable], ['rejected', c.rejected]],
    ['received', 'rejected']));
    ph.appendChild(el('div', 'counts', 'today ' + p.pushes_today + (p.https ? ' (https: no daily cap)' : ' of 500')));
    var screen = el('div', 'screen');
    screen.appendChild(el('h3', '', 'toasts (latest first)'));
    screen.appendChild(fragment('toasts', p.toasts_html, 'no toasts yet'));
    screen.appendChild(el('h3', '', 'primary tile' + (p.tile.kind ? ' · ' + p.tile.kind : '')));
    screen.appendChild(fragment('tile', p.tile_html, 'no tile update yet'));
    Object.keys(p.secondary_html || {}).sort().forEach(function (id) {
      var t = (p.secondary_tiles || {})[id] || {};
      screen.appendChild(el('h3', '', 'secondary tile ' + id + (t.kind ? ' · ' + t.kind : '')));
      screen.appendChild(fragment('tile secondary', p.secondary_html[id], ''));
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

  // morph makes the page's node a look like the freshly rendered b,
  // keeping a's nodes where they match: only changed text, attributes and
  // children are touched. An image whose source did not change keeps its
  // hidden flag (set when it failed to load).
  function morph(a, b) {
    if (a.nodeType !== b.nodeType || a.nodeName !== b.nodeName) {
      a.replaceWith(b);
      return;
    }
    if (a.nodeType !== 1) {
      if (a.data !== b.data) { a.data = b.data; }
      return;
    }
    var keepHidden = a.nodeName === 'IMG' && a.getAttribute('src') === b.getAttribute('src');
    Array.prototype.slice.call(b.attributes).forEach(function (at) {
      if (a.getAttribute(at.name) !== at.value) { a.setAttribute(at.name, at.value); }
    });
    Array.prototype.slice.call(a.attributes).forEach(function (at) {
      if (!b.hasAttribute(at.name) && !(keepHidden && at.name === 'hidden')) { a.removeAttribute(at.name); }
    });
    var next = Array.prototype.slice.call(b.childNodes);
    next.forEach(function (n, i) {
      var old = a.childNodes[i];
      if (old) { morph(old, n); } else { a.appendChild(n); }
    });
    while (a.childNodes.length > next.length) { a.removeChild(a.lastChild); }
  }

  function render(state) {
    if (state.version === shown) { return; }
    shown = state.version;
    var next = el('main');
    var others = window.tilecastDevices || [];
    var none = !state.phones.length && others.every(function (o) { return !(state[o.key] || []).length; });
    if (none) { next.appendChild(el('p', 'empty', 'No channels yet: POST /channels (see tilecast emulate --help).')); }
    state.phones.forEach(function (p) { next.appendChild(phone(p)); });
    // Other transports' devices (assets/windows.js, …) register a renderer
    // for their part of the state.
    others.forEach(function (o) {
      (state[o.key] || []).forEach(function (d) { next.appendChild(o.render(d)); });
    });
    next.id = root.id;
    next.className = root.className;
    morph(root, next);
    root.dataset.version = state.version;
  }

  function status(text, bad) {
    live.textContent = text;
    live.className = bad ? 'live bad' : 'live';
  }

  function load() {
    fetch('state.json', { cache: 'no-store' })
      .then(function (r) { return r.json(); })
      .then(function (s) { render(s); if (polling !== null) { status('polling every 2 s'); } })
      .catch(function () { status('emulator unreachable', true); });
  }

  function poll() {
    if (polling === null) {
      polling = setInterval(load, 2000);
      status('polling every 2 s');
    }
  }

  load();
  // ?poll skips SSE: headless browsers with a virtual-time budget wait for
  // open streams forever, and some proxies buffer event streams.
  if (!window.EventSource || /[?&]poll\b/.test(location.search)) { poll(); return; }
  var es = new EventSource('events');
  es.onopen = function () { status('live'); };
  es.addEventListener('state', function (ev) {
    var v = JSON.parse(ev.data).version;
    if (v !== shown) { load(); }
  });
  es.onerror = function () { es.close(); poll(); };
}());
