// Renders one emulated Web Push browser of /state.json (state.browsers):
// its app icon with the badge, the stored tile content, the notifications
// shown and the messages held while offline. It registers with phone.js
// as the renderer of state.browsers; every text goes in as text.
(function () {
  'use strict';
  function el(tag, cls, text) {
    var n = document.createElement(tag);
    if (cls) { n.className = cls; }
    if (text !== undefined && text !== null) { n.textContent = text; }
    return n;
  }

  // Only http(s) links and images, as the shipped worker allows.
  function safeURL(u) {
    try {
      var p = new URL(u, location.href);
      return (p.protocol === 'http:' || p.protocol === 'https:') ? p.href : '';
    } catch (e) { return ''; }
  }

  function browser(b) {
    var box = el('section', 'phone browser');
    box.dataset.token = b.token;
    var head = el('div', 'phone-head');
    head.appendChild(el('h2', '', b.name));
    head.appendChild(el('span', 'behaviour b-' + b.behaviour, 'web push · ' + b.behaviour));
    box.appendChild(head);
    var c = b.counts;
    // Each push is delivered at once, held (offline) or refused; what
    // became of the held ones is the second line.
    box.appendChild(window.tilecastCounts(c.total, [['delivered', c.delivered - c.flushed], ['held', c.held],
      ['unsubscribed', c.unsubscribed], ['expired', c.expired], ['rate limited', c.ratelimited],
      ['unavailable', c.unavailable], ['rejected', c.rejected]], ['delivered', 'rejected']));
    if (c.held) {
      box.appendChild(el('div', 'counts', 'of the held: delivered later ' + c.flushed + ' · replaced ' + c.replaced +
        ' · dropped ' + c.dropped + ' · waiting ' + (b.held ? b.held.length : 0)));
    }

    var screen = el('div', 'screen');
    var row = el('div', 'app-row');
    var icon = el('div', 'app-icon', (b.name || '?').charAt(0).toUpperCase());
    if (b.badge > 0) { icon.appendChild(el('span', 'app-badge', b.badge > 99 ? '99+' : String(b.badge))); }
    row.appendChild(icon);
    var tile = el('div', 'app-tile');
    if (b.tile) {
      tile.appendChild(el('b', '', b.tile.title || ''));
      if (b.tile.body) { tile.appendChild(el('span', '', b.tile.body)); }
      var img = safeURL(b.tile.image || '');
      if (img) {
        var im = el('img');
        im.alt = '';
        im.src = img;
        im.addEventListener('error', function () { im.hidden = true; });
        tile.appendChild(im);
      }
    } else {
      tile.appendChild(el('p', 'empty', b.badge >= 0 ? 'badge only, no tile content yet' : 'no tile update yet'));
    }
    row.appendChild(tile);
    screen.appendChild(el('h3', '', 'app icon and tile content'));
    screen.appendChild(row);

    screen.appendChild(el('h3', '', 'notifications (latest first)'));
    if (b.notifications && b.notifications.length) {
      var ul = el('ul', 'notes');
      b.notifications.forEach(function (n) {
        var li = el('li', 'note');
        li.appendChild(el('b', '', n.title));
        if (n.body) { li.appendChild(el('span', '', n.body)); }
        var href = safeURL(n.url || '');
        if (href) {
          var a = el('a', '', n.url);
          a.href = href;
          a.rel = 'noopener noreferrer';
          li.appendChild(el('br'));
          li.appendChild(a);
        }
        ul.appendChild(li);
      });
      screen.appendChild(ul);
    } else {
      screen.appendChild(el('p', 'empty', 'no notifications yet'));
    }
    if (b.held && b.held.length) {
      screen.appendChild(el('h3', '', 'held while offline'));
      var hl = el('ul', 'held');
      b.held.forEach(function (m) {
        hl.appendChild(el('li', '', m.kind + (m.topic ? ' · topic ' + m.topic : '') + ' · TTL ' + m.ttl + ' s · ' + m.urgency));
      });
      screen.appendChild(hl);
    }
    if (b.rejected && b.rejected.length) {
      screen.appendChild(el('h3', '', 'rejected pushes'));
      var rl = el('ul', 'rejected');
      b.rejected.slice(0, 5).forEach(function (r) { rl.appendChild(el('li', '', r.status + ': ' + r.reason)); });
      screen.appendChild(rl);
    }
    box.appendChild(screen);
    return box;
  }
  window.tilecastDevices = window.tilecastDevices || [];
  window.tilecastDevices.push({ key: 'browsers', render: browser });
}());
