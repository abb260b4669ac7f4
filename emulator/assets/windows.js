// Renders the Windows devices of /state.json (state.windows) for phone.js:
// a Start menu with the live tile in every size and its badge, and the
// Action Center's toasts. The HTML fragments were rendered and escaped by
// the server (package tileview); everything else goes in as text.
(function () {
  'use strict';
  function el(tag, cls, text) {
    var n = document.createElement(tag);
    if (cls) { n.className = cls; }
    if (text !== undefined) { n.textContent = text; }
    return n;
  }
  function fragment(cls, html) {
    var n = el('div', cls);
    n.innerHTML = html || '';
    return n;
  }
  function device(d) {
    var ph = el('section', 'phone windows');
    ph.dataset.token = d.token;
    var head = el('div', 'phone-head');
    head.appendChild(el('h2', '', d.name));
    head.appendChild(el('span', 'behaviour b-' + d.behaviour, 'wns · ' + d.behaviour));
    ph.appendChild(head);
    var c = d.counts;
    ph.appendChild(window.tilecastCounts(c.total, [['received', c.received], ['unauthorized (401)', c.unauthorized],
      ['throttled', c.throttled], ['revoked', c.revoked], ['unknown channel', c.unknown], ['wrong app', c.wrong_app],
      ['unavailable', c.unavailable], ['rejected', c.rejected]], ['received', 'rejected']));
    ph.appendChild(el('div', 'counts', 'badge ' + (d.badge || 'none')));
    var screen = el('div', 'screen');
    screen.appendChild(el('h3', '', 'Start'));
    screen.appendChild(fragment('start', d.start_html));
    screen.appendChild(el('h3', '', 'Action Center (latest first)'));
    screen.appendChild(fragment('action-center', d.action_center_html));
    if (d.rejected && d.rejected.length) {
      screen.appendChild(el('h3', '', 'rejected pushes'));
      var ul = el('ul', 'rejected');
      d.rejected.slice(0, 5).forEach(function (r) { ul.appendChild(el('li', '', r.status + ': ' + r.reason)); });
      screen.appendChild(ul);
    }
    ph.appendChild(screen);
    return ph;
  }
  window.tilecastDevices = window.tilecastDevices || [];
  window.tilecastDevices.push({ key: 'windows', render: device });
}());
