// The example page: registers sw.js, subscribes this browser to push with
// the daemon's VAPID public key, registers the subscription with an app
// key, and shows the latest tile the worker stored.
'use strict';
(function () {
  const CACHE = 'tilecast';
  const status = document.getElementById('status');

  function say(msg) { status.textContent = msg; }

  // window.tilecastReady resolves with the worker's registration once it
  // is active (tests wait on it).
  window.tilecastReady = ('serviceWorker' in navigator)
    ? navigator.serviceWorker.register('sw.js').then(() => navigator.serviceWorker.ready)
    : Promise.reject(new Error('this browser has no service workers'));

  function tileKey(reg) { return new URL('tilecast-tile.json', reg.scope).href; }

  // readTile returns the tile the worker stored, or null.
  window.tilecastTile = async function () {
    const reg = await window.tilecastReady;
    const cache = await caches.open(CACHE);
    const r = await cache.match(tileKey(reg));
    return r ? r.json() : null;
  };

  function safeURL(u) {
    try {
      const p = new URL(u, location.href);
      return p.protocol === 'https:' || p.protocol === 'http:' ? p.href : '';
    } catch (e) { return ''; }
  }

  async function showTile() {
    const tile = await window.tilecastTile();
    if (!tile) { return; }
    document.getElementById('tile-title').textContent = tile.title || 'tile';
    document.getElementById('tile-body').textContent = tile.body || '';
    const badge = document.getElementById('badge');
    badge.hidden = !(tile.count > 0);
    badge.textContent = tile.count > 99 ? '99+' : String(tile.count || '');
    const img = document.getElementById('tile-image');
    const src = safeURL(tile.image || '');
    img.hidden = !src;
    if (src) { img.src = src; }
  }

  function keyBytes(b64url) {
    const b64 = b64url.replace(/-/g, '+').replace(/_/g, '/') + '==='.slice((b64url.length + 3) % 4);
    return Uint8Array.from(atob(b64), (c) => c.charCodeAt(0));
  }

  async function subscribe(ev) {
    ev.preventDefault();
    const appKey = document.getElementById('app-key').value.trim();
    const feeds = document.getElementById('feeds').value.split(',').map((s) => s.trim()).filter(Boolean);
    try {
      const keyResp = await fetch('/v1/webpush/key', { cache: 'no-store' });
      if (!keyResp.ok) { throw new Error('the daemon has no Web Push key (' + keyResp.status + ')'); }
      const { public_key: publicKey } = await keyResp.json();
      if (await Notification.requestPermission() !== 'granted') { throw new Error('notifications were not allowed'); }
      const reg = await window.tilecastReady;
      const sub = await reg.pushManager.subscribe({ userVisibleOnly: true, applicationServerKey: keyBytes(publicKey) });
      const body = { subscription: sub.toJSON() };
      if (feeds.length) { body.feeds = feeds; }
      const r = await fetch('/v1/channels', {
        method: 'POST',
        headers: { 'Content-Type': 'application/json', Authorization: 'Bearer ' + appKey },
        body: JSON.stringify(body),
      });
      const answer = await r.json().catch(() => ({}));
      if (!r.ok) { throw new Error(answer.error || ('registration failed: ' + r.status)); }
      say('Subscribed: channel ' + answer.id);
    } catch (e) {
      say('Not subscribed: ' + e.message);
    }
  }

  document.getElementById('subscribe').addEventListener('submit', subscribe);
  if ('serviceWorker' in navigator) {
    navigator.serviceWorker.addEventListener('message', (ev) => {
      if (ev.data && ev.data.type === 'tilecast-tile') { showTile(); }
      if (ev.data && ev.data.type === 'tilecast-toast') {
        document.getElementById('latest').textContent = 'Latest notification: ' + ev.data.title +
          (ev.data.body ? ' · ' + ev.data.body : '');
      }
    });
  }
  window.tilecastReady.then(showTile, (e) => say(e.message));
}());
